"""Slack calls through an outage: retried when safe, looked for when they may have landed.

The real `AsyncWebClient` with the bot's retry handlers, and the real `Poster`, against the
Slack sandbox dropping connections (`drop_connections`) or answering 5xx (`fail_next`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.sandbox.slack.server import SlackSandbox
from bot.slack.poster import Poster, Tag
from bot.slack.retry import OutageRetryHandler, RateLimitRetryHandler, retry_handlers
from tests.ports import free_port


@pytest.fixture
async def slack() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox() as sandbox:
        yield sandbox


def client_for(slack: SlackSandbox) -> AsyncWebClient:
    return AsyncWebClient(
        token=slack.bot_token, base_url=slack.api_url, retry_handlers=retry_handlers()
    )


async def test_an_update_is_retried_through_a_2s_outage_and_lands_once(
    slack: SlackSandbox,
) -> None:
    client = client_for(slack)
    top = await client.chat_postMessage(channel="C0GENERAL", text="⏳ working")
    slack.drop_connections(2.0)
    started = time.monotonic()
    await client.chat_update(channel="C0GENERAL", ts=top["ts"], text="✅ done")
    waited = time.monotonic() - started
    assert slack.messages("C0GENERAL")[-1].text == "✅ done"
    assert waited >= 2.0
    assert [c.error for c in slack.calls_to("chat.update")][-1] is None


async def test_a_5xx_is_retried_for_an_update_but_not_for_a_post(slack: SlackSandbox) -> None:
    client = client_for(slack)
    top = await client.chat_postMessage(channel="C0GENERAL", text="top")
    slack.fail_next("chat.update", status=503, times=2)
    await client.chat_update(channel="C0GENERAL", ts=top["ts"], text="updated")
    slack.fail_next("chat.postMessage", status=500)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0GENERAL", text="may have landed")
    assert [c.status for c in slack.calls_to("chat.update")] == [503, 503, 200]
    assert len(slack.calls_to("chat.postMessage")) == 2  # the top, and one try


async def test_a_dropped_post_is_not_blindly_retried_by_the_client(slack: SlackSandbox) -> None:
    client = client_for(slack)
    slack.drop_connections(5.0, landing=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel="C0GENERAL", text="landed")
    assert [m.text for m in slack.messages("C0GENERAL")] == ["landed"]
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_a_post_that_never_connected_is_retried_until_the_budget_runs_out() -> None:
    handler = OutageRetryHandler(budget_s=1.0, max_interval_s=0.2)
    client = AsyncWebClient(
        token="xoxb-x", base_url=f"http://127.0.0.1:{free_port()}/api/", retry_handlers=[handler]
    )
    started = time.monotonic()
    with pytest.raises(aiohttp.ClientConnectorError):
        await client.chat_postMessage(channel="C0GENERAL", text="nobody listens")
    assert 1.0 <= time.monotonic() - started < 3.0


async def test_429s_keep_their_own_allowance_after_outage_retries(slack: SlackSandbox) -> None:
    client = AsyncWebClient(
        token=slack.bot_token,
        base_url=slack.api_url,
        retry_handlers=[RateLimitRetryHandler(max_retry_count=1), OutageRetryHandler()],
    )
    top = await client.chat_postMessage(channel="C0GENERAL", text="top")
    slack.fail_next("chat.update", status=503, times=2)
    slack.fail_next("chat.update", status=429, retry_after=0, times=1)
    await client.chat_update(channel="C0GENERAL", ts=top["ts"], text="through both")
    assert [c.status for c in slack.calls_to("chat.update")] == [503, 503, 429, 200]


async def test_a_post_that_landed_unanswered_is_found_and_not_posted_again(
    slack: SlackSandbox,
) -> None:
    poster = Poster(client_for(slack), rate=50, replies_page=2)
    top = await poster.post("C0GENERAL", blocks.error_message("top"))
    for i in range(3):  # the thread is longer than a page: the poster must page
        await poster.post("C0GENERAL", blocks.error_message(f"r{i}"), thread_ts=top)
    slack.drop_connections(1.5, landing=1)
    tag = Tag("run-1", "review.0")
    ts = await poster.post("C0GENERAL", blocks.error_message("review"), thread_ts=top, tag=tag)
    replies = slack.replies("C0GENERAL", top)
    assert [r.text for r in replies].count("⚠ review") == 1
    assert replies[-1].ts == ts and replies[-1].metadata == tag.metadata()


async def test_a_post_dropped_before_slack_acted_is_posted_again_once(
    slack: SlackSandbox,
) -> None:
    poster = Poster(client_for(slack), rate=50)
    top = await poster.post("C0GENERAL", blocks.error_message("top"))
    slack.drop_connections(1.5)
    tag = Tag("run-1", "review.0")
    ts = await poster.post("C0GENERAL", blocks.error_message("review"), thread_ts=top, tag=tag)
    replies = slack.replies("C0GENERAL", top)
    assert [r.text for r in replies] == ["⚠ review"] and replies[0].ts == ts


async def test_an_unreadable_thread_is_posted_to_again_rather_than_lost(
    slack: SlackSandbox,
) -> None:
    # C0RANDOM: the bot posts there with chat:write.public but cannot read it back (an app
    # that asks for the scope; orchestrate's manifest does not, and joins instead).
    slack.web_api.scopes |= {"chat:write.public"}
    poster = Poster(client_for(slack), rate=50)
    top = await poster.post("C0RANDOM", blocks.error_message("top"))
    slack.drop_connections(0.5)
    await asyncio.sleep(0)  # the outage starts now
    tag = Tag("run-1", "review.0")
    await poster.post("C0RANDOM", blocks.error_message("review"), thread_ts=top, tag=tag)
    assert [r.text for r in slack.replies("C0RANDOM", top)] == ["⚠ review"]
    refused = [c.error for c in slack.calls_to("conversations.replies") if c.error]
    assert refused and set(refused) <= {"not_in_channel", "connection_dropped"}


async def test_a_review_slack_never_took_is_named_in_the_thread_when_slack_is_back(
    slack: SlackSandbox,
) -> None:
    from bot.core.events import ReviewReady, RunFinished, RunStarted, StrategyReady
    from bot.slack.render import ThreadRenderer
    from tests.blocks.blocks_sample_data import HAIKU, OPUS, SONNET, cost, review, strategy

    client = AsyncWebClient(
        token=slack.bot_token,
        base_url=slack.api_url,
        retry_handlers=[OutageRetryHandler(budget_s=0.5, max_interval_s=0.5)],
    )
    poster = Poster(client, rate=50)
    top = await poster.post("C0GENERAL", blocks.error_message("⏳ planning"))
    render = ThreadRenderer(
        poster, run_id="r1", channel="C0GENERAL", thread_ts=top, asker_id="U0ALICE", question="q"
    )
    plan = strategy(components=0)
    await render(RunStarted("q", (OPUS, HAIKU, SONNET)))
    await render(StrategyReady(plan, OPUS))
    await render(ReviewReady(review(), SONNET))
    slack.drop_connections(0.8)  # longer than one call's retry budget, shorter than two
    await render(RunFinished(cost(), 3.0))
    replies = slack.replies("C0GENERAL", top)
    texts = [r.text for r in replies]
    assert (
        len(texts) == 1 and "Slack could not be reached to post the review of this run" in texts[0]
    )
    assert "Done in" in str(slack.messages("C0GENERAL")[-1].blocks)


async def test_a_top_level_post_that_landed_unanswered_is_found_in_the_channel(
    slack: SlackSandbox,
) -> None:
    poster = Poster(client_for(slack), rate=50, replies_page=1)  # one message a page
    await poster.post("C0GENERAL", blocks.error_message("earlier"))
    slack.drop_connections(1.5, landing=1)
    tag = Tag("run-1", "top.1")
    ts = await poster.post("C0GENERAL", blocks.error_message("top"), tag=tag)
    await poster.post("C0GENERAL", blocks.error_message("later"))
    texts = [m.text for m in slack.messages("C0GENERAL")]
    assert texts == ["⚠ earlier", "⚠ top", "⚠ later"]
    assert slack.messages("C0GENERAL")[1].ts == ts
