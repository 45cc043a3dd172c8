"""Contract test: the Web API methods the app calls per run, per click or per page are held
to Slack's tiers as `chat.update` is: at most N calls in any 60 s per workspace and app
(Tier 2: 20, Tier 3: 50, Tier 4: 100), each method counted apart, answered `429 ratelimited`
with `Retry-After`. `assistant.threads.setStatus` has unpublished "special" limits, read as
Tier 3."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack.server import SlackSandbox
from bot.slack.poster import Poster
from tests.sandbox.test_slack_sandbox import api_error

Call = Callable[[AsyncWebClient], Awaitable[Any]]
CALLS: dict[str, tuple[int, Call]] = {
    "users.list": (20, lambda c: c.users_list(limit=200)),
    "users.info": (100, lambda c: c.users_info(user="U0ALICE")),
    "assistant.threads.setStatus": (
        50,
        lambda c: c.assistant_threads_setStatus(
            channel_id="C0GENERAL", thread_ts="1.000001", status="is thinking…"
        ),
    ),
    "conversations.replies": (50, lambda c: c.conversations_replies(channel="C0GENERAL", ts="1.1")),
    "conversations.history": (50, lambda c: c.conversations_history(channel="C0GENERAL")),
    "conversations.join": (50, lambda c: c.conversations_join(channel="C0GENERAL")),
    "views.open": (100, lambda c: c.views_open(trigger_id="t", view={"type": "modal"})),
}


@pytest.mark.parametrize("method", list(CALLS))
async def test_methods_called_in_loops_are_held_to_their_tier(method: str) -> None:
    limit, call = CALLS[method]
    async with SlackSandbox() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        for _ in range(limit):
            try:
                await call(client)
            except Exception as exc:  # refused for its arguments: it still counts, as at Slack
                assert getattr(exc, "response", None) is not None
                assert exc.response.status_code != 429  # type: ignore[attr-defined]
        error = await api_error(call(client))
        others = await client.auth_test()  # another method is counted apart
    assert (error.response.status_code, error.response["error"]) == (429, "ratelimited")
    assert 55 <= int(error.response.headers["Retry-After"]) <= 60
    assert others["ok"]


async def test_the_apps_loading_status_stays_under_its_limit_under_a_burst_of_runs() -> None:
    # Eighty status changes at once (twenty runs' steps): the poster sets what its budget
    # allows and skips the rest, so the run never waits behind a 429's Retry-After.
    async with SlackSandbox() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        poster = Poster(client)
        posted = await client.chat_postMessage(channel="C0GENERAL", text="run")
        for n in range(80):
            await poster.set_status("C0GENERAL", str(posted["ts"]), f"step {n}")
        calls = slack.calls_to("assistant.threads.setStatus")
    assert calls and all(c.ok for c in calls)
    assert len(calls) <= 50
