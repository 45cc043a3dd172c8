"""A whole orchestrate stack for scenario tests: both sandboxes and the real app.

`running_stack(mode=...)` starts the Slack and Claude stand-ins on loopback, points a real
`Settings` at them (a throwaway SQLite ledger in `tmp_path`), and runs the real app in
Socket Mode or HTTP mode exactly as `orchestrate-bot serve` does. Tests talk to it only
through the sandboxes' wires: slash commands over the socket or signed HTTP posts, and
what the workspace shows afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox
from bot.services import Services, http_app, socket_mode_app
from bot.settings import Settings
from bot.slack.server import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    SERVICES,
    SERVING,
    http_runner,
)

Mode = Literal["socket", "http"]


@dataclass
class Stack:
    slack: SlackSandbox
    claude: ClaudeSandbox
    services: Services
    settings: Settings
    events_url: str | None = None  # HTTP mode only

    async def command(
        self, text: str, *, user_id: str = "U0ALICE", channel_id: str = "C0GENERAL"
    ) -> float:
        """Send `/orchestrate text` the way this stack's mode receives it; returns ack latency."""
        if self.events_url is None:
            ack = await self.slack.send_slash_command(
                text=text, user_id=user_id, channel_id=channel_id
            )
            assert not ack.timed_out
            return ack.latency_s
        status, _, latency = await self.slack.post_slash_command_http(
            self.events_url, text=text, user_id=user_id, channel_id=channel_id
        )
        assert status == 200
        return latency

    async def settle(self, *, runs: int = 1, ephemerals: int = 1) -> None:
        """Wait until `runs` runs were admitted (or `ephemerals` ephemeral answers arrived)
        and every run ended."""
        async with asyncio.timeout(30):
            # The sandbox has no notification for admissions or ephemerals: poll briefly.
            while (  # noqa: ASYNC110
                self.services.runs.admitted < runs and len(self.slack.ephemerals()) < ephemerals
            ):
                await asyncio.sleep(0.02)
            await self.services.runs.wait_idle()

    def thread(self, channel_id: str = "C0GENERAL") -> tuple[Any, list[Any]]:
        """The channel's latest top-level message and its replies."""
        top = self.slack.messages(channel_id)[-1]
        return top, self.slack.replies(channel_id, top.ts)


def stack_settings(
    slack: SlackSandbox, claude: ClaudeSandbox, tmp: Path, **overrides: Any
) -> Settings:
    base = Settings(
        slack_bot_token=slack.bot_token,
        slack_app_token=slack.app_token,
        slack_signing_secret=slack.signing_secret,
        slack_api_url=slack.api_url,
        anthropic_api_key=claude.api_key,
        anthropic_base_url=claude.base_url,
        database_url=f"sqlite:///{tmp / 'ledger.db'}",
        slack_posts_per_s=50.0,
        call_timeout_s=10.0,
        # Scenario tests count and index a thread's replies: the progress message (on in
        # production) is asked for by the tests about it (tests/slack/test_progress.py).
        progress=False,
    )
    return replace(base, **overrides)


@contextlib.asynccontextmanager
async def running_stack(
    tmp: Path,
    *,
    mode: Mode = "socket",
    slack: SlackSandbox | None = None,
    time_scale: float = 0.01,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    body_timeout_s: float = BODY_TIMEOUT_S,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    async with contextlib.AsyncExitStack() as stack:
        slack = slack or SlackSandbox()
        if not slack.base_url:  # a sandbox already running belongs to the caller (shared)
            await stack.enter_async_context(slack)
        claude = await stack.enter_async_context(
            ClaudeSandbox(latency=LatencyModel(time_scale=time_scale))
        )
        settings = stack_settings(slack, claude, tmp, **overrides)
        if mode == "socket":
            services = await stack.enter_async_context(socket_mode_app(settings))
            await slack.wait_connected()
            yield Stack(slack, claude, services, settings)
        else:
            # Served as `orchestrate-bot serve --http` serves it (aiohttp's TestServer would
            # cancel a handler whose client goes away, which production does not).
            app = http_app(settings, body_timeout_s=body_timeout_s)
            runner = http_runner(app, header_timeout_s=header_timeout_s)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            started = app[SERVING].started
            assert started is not None
            await started  # ready: the Claude API and Slack checks passed
            url = f"http://127.0.0.1:{port}/slack/events"
            yield Stack(slack, claude, app[SERVICES], settings, url)
        slack.assert_no_unknown_calls()
