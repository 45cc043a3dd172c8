"""Contract tests: the Slack stand-in refuses the stream chunks Slack refuses.

Shapes from slack_sdk's chunk models (`slack_sdk/models/messages/chunk.py`) and Slack's method
reference; limits where only reports settle them are the stricter reading (docs/sandbox.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import PlanUpdateChunk, TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack.server import SlackSandbox
from bot.sandbox.slack.transcript import transcript
from tests.sandbox.slack_errors import error_of
from tests.sandbox.test_slack_sandbox import api_error


async def _stream(client: AsyncWebClient, **kwargs: Any) -> str:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="q")
    started = await client.chat_startStream(
        channel="C0GENERAL",
        thread_ts=parent["ts"],
        recipient_user_id="U0ALICE",
        recipient_team_id="T0SANDBOX",
        **kwargs,
    )
    return str(started["ts"])


def task(**fields: Any) -> dict[str, Any]:
    return {"type": "task_update", "id": "t1", "title": "Opus: strategy", "status": "pending"} | (
        fields
    )


async def test_the_sdk_chunk_models_are_accepted_and_each_task_shows_its_latest_state(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    ts = await _stream(
        client,
        task_display_mode="plan",
        chunks=[
            PlanUpdateChunk(title="Working"),
            TaskUpdateChunk(id="a", title="A", status="in_progress"),
        ],
    )
    await client.chat_appendStream(
        channel="C0GENERAL",
        ts=ts,
        chunks=[
            TaskUpdateChunk(id="a", title="A", status="complete", details="$0.0100"),
            TaskUpdateChunk(id="b", title="B", status="in_progress"),
        ],
    )
    await client.chat_stopStream(channel="C0GENERAL", ts=ts, chunks=[PlanUpdateChunk(title="Done")])
    shown = transcript(slack.workspace, "C0GENERAL", stream_ttl_s=slack.stream_ttl_s)
    assert "[plan] Done" in shown
    assert "[complete] A — $0.0100" in shown
    # Slack shows a task still open when its stream stops as failed.
    assert "[error (left open)] B" in shown
    assert "[plan] Working" not in shown and "[in_progress] A" not in shown


@pytest.mark.parametrize(
    "chunk",
    [
        task(status="done"),  # not one of pending, in_progress, complete, error
        task(status=None),
        {"type": "task_update", "title": "no id", "status": "pending"},
        task(id=""),
        task(title="x" * 257),  # task and plan fields: 256 at most
        task(details="x" * 257),
        task(colour="red"),  # unknown field
        task(sources=[{"type": "url", "text": "no url"}]),
        {"type": "plan_update"},
        {"type": "plan_update", "title": "x" * 257},
        {"type": "thinking", "text": "?"},  # unknown chunk type
        "not an object",
    ],
)
async def test_malformed_chunks_are_refused(client: AsyncWebClient, chunk: Any) -> None:
    ts = await _stream(client)
    assert (
        await error_of(client.chat_appendStream(channel="C0GENERAL", ts=ts, chunks=[chunk]))
        == "invalid_arguments"
    )


async def test_a_bad_chunk_is_refused_when_starting_and_stopping_too(
    client: AsyncWebClient,
) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="q")
    start = client.chat_startStream(
        channel="C0GENERAL",
        thread_ts=parent["ts"],
        recipient_user_id="U0ALICE",
        recipient_team_id="T0SANDBOX",
        chunks=[task(status="stopped")],
    )
    assert await error_of(start) == "invalid_arguments"
    ts = await _stream(client)
    stop = client.chat_stopStream(channel="C0GENERAL", ts=ts, chunks=[task(status="stopped")])
    assert await error_of(stop) == "invalid_arguments"


async def test_only_timeline_and_plan_are_display_modes(client: AsyncWebClient) -> None:
    assert await _stream(client, task_display_mode="plan")
    assert await _stream(client, task_display_mode="timeline")
    assert await error_of(_stream(client, task_display_mode="list")) == "invalid_arguments"


async def test_markdown_text_and_chunks_cannot_share_a_request(client: AsyncWebClient) -> None:
    ts = await _stream(client)
    both = client.chat_appendStream(channel="C0GENERAL", ts=ts, markdown_text="a", chunks=[task()])
    assert await error_of(both) == "invalid_arguments"


async def test_a_message_shows_at_most_fifty_tasks(client: AsyncWebClient) -> None:
    ts = await _stream(client, chunks=[task(id=f"t{i}") for i in range(50)])
    # Updating a task already shown is fine; a fifty-first is not.
    await client.chat_appendStream(channel="C0GENERAL", ts=ts, chunks=[task(id="t0")])
    extra = client.chat_appendStream(channel="C0GENERAL", ts=ts, chunks=[task(id="t50")])
    assert await error_of(extra) == "invalid_arguments"


async def test_too_much_text_across_tasks_is_msg_too_long(client: AsyncWebClient) -> None:
    ts = await _stream(client)
    cards = [task(id=f"t{i}", title="x" * 250, details="y" * 250) for i in range(23)]
    assert (
        await error_of(client.chat_appendStream(channel="C0GENERAL", ts=ts, chunks=cards))
        == "msg_too_long"
    )


async def test_an_expired_stream_updated_with_blocks_shows_them_instead_of_its_tasks() -> None:
    async with SlackSandbox(stream_ttl_s=0.05) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        ts = await _stream(client, chunks=[task(title="Opus: strategy", status="in_progress")])
        await asyncio.sleep(0.1)
        section = {"type": "section", "text": {"type": "mrkdwn", "text": "✓ strategy"}}
        await client.chat_update(channel="C0GENERAL", ts=ts, text="progress", blocks=[section])
        shown = transcript(slack.workspace, "C0GENERAL", stream_ttl_s=slack.stream_ttl_s)
    assert "✓ strategy" in shown and "Opus: strategy" not in shown


async def test_the_stream_methods_are_held_to_their_tiers_per_workspace(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    # chat.startStream and chat.stopStream are Tier 2, chat.appendStream Tier 4: read as
    # 20 and 100 calls in any 60 s, each method counted apart, in any channel or thread.
    streams = [await _stream(client) for _ in range(20)]
    error = await api_error(_stream(client))
    assert (error.response.status_code, error.response["error"]) == (429, "ratelimited")
    assert 55 <= int(error.response.headers["Retry-After"]) <= 60
    for n in range(100):
        await client.chat_appendStream(channel="C0GENERAL", ts=streams[n % 20], chunks=[task()])
    error = await api_error(
        client.chat_appendStream(channel="C0GENERAL", ts=streams[0], chunks=[task()])
    )
    assert error.response.status_code == 429
    for ts in streams:  # the stops have a budget of their own
        await client.chat_stopStream(channel="C0GENERAL", ts=ts)
    stopped = [slack.workspace.find("C0GENERAL", ts) for ts in streams]
    assert all(m is not None and m.stream is not None and m.stream.stopped for m in stopped)


async def test_a_stream_expires_once_appends_stop_for_a_while_and_appends_keep_it_alive() -> None:
    # Slack ends a stream that gets no append for a while (vercel/chat#607), and one that has
    # lived about five minutes whatever was appended (python-slack-sdk#1859): both, scaled.
    async with SlackSandbox(stream_idle_s=0.3, stream_ttl_s=1.2) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        kept, quiet = await _stream(client), await _stream(client)
        for _ in range(4):  # 0.8 s of appends every 0.2 s: past the idle limit, still alive
            await asyncio.sleep(0.2)
            await client.chat_appendStream(channel="C0GENERAL", ts=kept, chunks=[task()])
        assert (
            await error_of(client.chat_appendStream(channel="C0GENERAL", ts=quiet, chunks=[task()]))
            == "message_not_in_streaming_state"
        )
        for _ in range(3):  # past its lifetime, appends or not
            await asyncio.sleep(0.2)
            with contextlib.suppress(SlackApiError):
                await client.chat_appendStream(channel="C0GENERAL", ts=kept, chunks=[task()])
        assert (
            await error_of(client.chat_stopStream(channel="C0GENERAL", ts=kept))
            == "message_not_in_streaming_state"
        )
