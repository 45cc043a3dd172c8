"""Contract tests: malformed metadata, unreadable threads, and dropped connections.

Driven with the real `AsyncWebClient`. A bot reads only conversations it is in, with the
history scope of the conversation's kind (paging and metadata visibility are covered in
test_slack_sandbox.py). An outage closes connections without an answer, sometimes after
the post was made.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack.server import SlackSandbox

META = {"event_type": "orchestrate_run_message", "event_payload": {"run_id": "r1", "part": "x"}}


@pytest.mark.parametrize(
    "metadata",
    [{"event_type": "x"}, {"event_payload": {}}, {"event_type": "x", "event_payload": []}],
)
async def test_malformed_metadata_is_refused(client: AsyncWebClient, metadata: Any) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C0GENERAL", text="x", metadata=metadata)
    assert caught.value.response["error"] == "invalid_metadata_format"


async def test_a_bot_reads_only_threads_it_can_and_may(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    # Posted with chat:write.public (an app that asks for it; orchestrate's manifest does
    # not) into a channel the bot is not in: it cannot read it.
    slack.web_api.scopes |= {"chat:write.public"}
    outside = await client.chat_postMessage(channel="C0RANDOM", text="hi")
    errors = []
    for channel, ts, cursor in (
        ("C0RANDOM", outside["ts"], None),
        ("C0GENERAL", "1.000001", None),
        ("C0NOPE", "1.000001", None),
    ):
        with pytest.raises(SlackApiError) as caught:
            await client.conversations_replies(channel=channel, ts=ts, cursor=cursor)
        errors.append(caught.value.response["error"])
    top = await client.chat_postMessage(channel="C0GENERAL", text="top")
    with pytest.raises(SlackApiError) as caught:
        await client.conversations_replies(channel="C0GENERAL", ts=top["ts"], cursor="bogus")
    errors.append(caught.value.response["error"])
    assert errors == ["not_in_channel", "thread_not_found", "channel_not_found", "invalid_cursor"]


async def test_reading_a_thread_needs_the_history_scope_of_its_kind() -> None:
    async with SlackSandbox(scopes=frozenset({"chat:write", "channels:history"})) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        top = await client.chat_postMessage(channel="G0TEAM", text="top")
        with pytest.raises(SlackApiError) as caught:
            await client.conversations_replies(channel="G0TEAM", ts=top["ts"])
    assert caught.value.response["error"] == "missing_scope"
    assert caught.value.response["needed"] == "groups:history"


async def test_an_outage_drops_connections_unanswered_sometimes_after_posting(
    slack: SlackSandbox,
) -> None:
    # No retry handlers: slack_sdk's default one retries a dropped post blindly.
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])
    slack.drop_connections(0.5, landing=1)
    outcomes = []
    for text in ("lands", "lost"):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.chat_postMessage(channel="C0GENERAL", text=text)
        outcomes.append([m.text for m in slack.messages("C0GENERAL")])
    await asyncio.sleep(0.6)
    after = await client.chat_postMessage(channel="C0GENERAL", text="after")
    assert outcomes == [["lands"], ["lands"]]
    assert after["ok"] is True
    dropped = [c.error for c in slack.calls_to("chat.postMessage")]
    assert dropped == ["connection_dropped", "connection_dropped", None]


async def test_history_is_newest_first_top_level_only_with_metadata_when_asked(
    client: AsyncWebClient,
) -> None:
    first = await client.chat_postMessage(channel="C0GENERAL", text="first", metadata=META)
    await client.chat_postMessage(channel="C0GENERAL", text="reply", thread_ts=first["ts"])
    second = await client.chat_postMessage(channel="C0GENERAL", text="second")
    plain = await client.conversations_history(channel="C0GENERAL", limit=1)
    rest = await client.conversations_history(
        channel="C0GENERAL",
        limit=1,
        cursor=plain["response_metadata"]["next_cursor"],
        include_all_metadata=True,
    )
    after = await client.conversations_history(channel="C0GENERAL", oldest=first["ts"])
    assert [m["ts"] for m in plain["messages"]] == [second["ts"]] and plain["has_more"]
    assert [m["ts"] for m in rest["messages"]] == [first["ts"]] and not rest["has_more"]
    assert rest["messages"][0]["metadata"] == META
    assert [m["ts"] for m in after["messages"]] == [second["ts"]]  # `oldest` is exclusive
    with pytest.raises(SlackApiError) as caught:
        await client.conversations_history(channel="C0RANDOM")
    assert caught.value.response["error"] == "not_in_channel"
