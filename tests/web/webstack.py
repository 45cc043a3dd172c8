"""The whole stack with the web view on, and a person signing in through the Slack sandbox.

`web_stack(tmp)` is `tests.harness.running_stack` in Socket Mode with `ORCHESTRATE_WEB_URL`
on a free loopback port (`WEB_PORT`), the sandbox's Sign in with Slack client and its
redirect URL registered. `sign_in(stack, user)` walks the real flow with an aiohttp client
(the app's login, the sandbox's authorize page and its form, the app's callback) and returns
the client holding the session cookie.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bot.sandbox.slack.server import SlackSandbox
from tests.harness import Stack, running_stack
from tests.ports import free_port

LINK = re.compile(r"<(https?://[^|>]+)\|Open in browser>")


@contextlib.asynccontextmanager
async def web_stack(tmp: Path, **overrides: Any) -> AsyncIterator[Stack]:
    port = free_port()
    web_url = f"http://127.0.0.1:{port}"
    slack = SlackSandbox()
    slack.oidc.redirect_uris.add(f"{web_url}/auth/slack")
    async with running_stack(
        tmp,
        slack=slack,
        web_url=web_url,
        web_port=port,
        slack_client_id=slack.oidc.client_id,
        slack_client_secret=slack.oidc.client_secret,
        **overrides,
    ) as stack:
        yield stack


def run_link(stack: Stack, channel_id: str = "C0GENERAL") -> str:
    """The "Open in browser" link in the channel's latest run's first message."""
    top = stack.slack.messages(channel_id)[-1]
    found = LINK.search(json.dumps(top.blocks))
    assert found, f"no web link in {top.blocks}"
    return found.group(1)


def client() -> aiohttp.ClientSession:
    # unsafe=True: the jar keeps cookies of an IP address host (127.0.0.1).
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(session: aiohttp.ClientSession, url: str, user_id: str) -> aiohttp.ClientResponse:
    """Open `url`, sign in as `user_id` on the sandbox's page, and land back on `url`."""
    async with session.get(url) as page:
        assert "/openid/connect/authorize" in str(page.url), page.url
        form = await page.text()
        authorize = str(page.url)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    fields = {k: _unescape(v) for k, v in fields.items()}
    assert fields, form
    async with session.post(authorize.split("?")[0], data={**fields, "user": user_id}) as landed:
        await landed.read()
        return landed


def _unescape(value: str) -> str:
    import html

    return html.unescape(value)
