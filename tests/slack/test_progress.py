"""Scenario tests: the progress message in a run's thread. The real app, over the wire,
against both sandboxes: a stream with one task per model step, each going in progress and
then complete with its model and cost (or in error), stopped with a summary when the run
ends; an ordinary message kept current with `chat.update` where streaming is refused or the
stream expires; and never a lost message or a failed run because of it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.slack.chunks import shown_chunks
from bot.sandbox.slack.server import SlackSandbox
from bot.slack import progress
from bot.slack.updates import TokenBucket
from tests.harness import Mode, Stack, running_stack
from tests.slack.test_run_controls import examples_in_flight

QUESTION = "Design a REST API for a social network"
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


def stream_calls(stack: Stack) -> list[Any]:
    return [c for c in stack.slack.calls if c.method in STREAM_METHODS and c.ok]


def statuses_by_task(stack: Stack) -> dict[str, list[str]]:
    """Each task's statuses in the order the stream calls sent them (repeats dropped)."""
    seen: dict[str, list[str]] = {}
    for call in stream_calls(stack):
        for chunk in call.args.get("chunks") or []:
            if chunk["type"] == "task_update":
                states = seen.setdefault(chunk["id"], [])
                if not states or states[-1] != chunk["status"]:
                    states.append(chunk["status"])
    return seen


def final_tasks(message: Any) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in shown_chunks(message.chunks) if c["type"] == "task_update"}


def progress_reply(stack: Stack) -> Any:
    _, replies = stack.thread()
    (progress,) = [r for r in replies if r.stream is not None or "Progress" in r.text]
    return progress


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_run_streams_a_task_per_step_in_its_thread_and_stops_with_a_summary(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode, time_scale=0.25, progress=True) as stack:
        await stack.command(QUESTION)
        await stack.settle()
        top, replies = stack.thread()
        progress = progress_reply(stack)
        calls = stream_calls(stack)
        statuses = statuses_by_task(stack)
    start = calls[0]
    assert start.method == "chat.startStream" and calls[-1].method == "chat.stopStream"
    assert start.args["thread_ts"] == top.ts and start.args["task_display_mode"] == "plan"
    assert start.args["recipient_user_id"] == "U0ALICE"
    assert start.args["recipient_team_id"] == "T0SANDBOX"
    # The first reply in the thread, ahead of the examples, and stopped once the run ended.
    assert replies[0] is progress and progress.stream.stopped
    examples = [f"example-{n}" for n in range(1, len(replies) - 1)]
    assert list(statuses) == ["plan", *examples, "review"]
    assert statuses["plan"] == ["in_progress", "complete"]
    assert statuses["review"][-2:] == ["in_progress", "complete"]
    # Every example was shown being written, then written (coalesced at most one call a
    # second, so never a step skipped backwards).
    assert all(statuses[e] == ["in_progress", "complete"] for e in examples)
    tasks = final_tasks(progress)
    assert tasks["plan"]["title"] == "Opus: strategy"
    assert tasks["plan"]["details"].endswith("claude-opus-5-5")
    assert tasks["example-1"]["title"].startswith("Haiku: example 1 of ")
    assert tasks["review"]["title"] == "Sonnet: review"
    assert all(t["status"] == "complete" and "$0.0" in t["details"] for t in tasks.values())
    assert progress.markdown_text.startswith("✅ Done in")
    # At most one append a second per run.
    appends = [c.at for c in calls if c.method == "chat.appendStream"]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(appends))


async def test_the_loading_status_is_set_again_after_the_stream_starts(tmp_path: Path) -> None:
    async with running_stack(tmp_path, time_scale=0.25, progress=True) as stack:
        await stack.command(QUESTION)
        await stack.settle()
        top, _ = stack.thread()
        calls = [
            c
            for c in stack.slack.calls
            if c.method in ("chat.startStream", "assistant.threads.setStatus")
        ]
        shown_now = stack.slack.workspace.current_status("C0GENERAL", top.ts)
    after_start = calls[[c.method for c in calls].index("chat.startStream") + 1 :]
    # The stream's reply clears the status; it is set again, as it was, right after.
    assert after_start[0].method == "assistant.threads.setStatus"
    assert after_start[0].args["status"] == "Opus is planning…"
    assert shown_now == ""  # and cleared at the end, as without progress


async def test_a_failed_example_ends_its_task_in_error_with_why(tmp_path: Path) -> None:
    async with running_stack(tmp_path, progress=True) as stack:
        stack.claude.add_rule(role="example", fault="refusal", times=1)
        await stack.command(QUESTION)
        await stack.settle()
        tasks = final_tasks(progress_reply(stack))
    failed = [t for t in tasks.values() if t["status"] == "error"]
    assert len(failed) == 1 and failed[0]["id"].startswith("example-")
    assert "declined" in failed[0]["details"] and "claude-haiku-5-5" in failed[0]["details"]
    assert tasks["review"]["status"] == "complete"


async def test_a_stop_ends_the_open_tasks_naming_who_stopped_the_run(tmp_path: Path) -> None:
    async with running_stack(tmp_path, time_scale=1.0, progress=True) as stack:
        await stack.command(QUESTION)
        await examples_in_flight(stack)
        top, _ = stack.thread()
        await stack.slack.click("C0GENERAL", top.ts, "orchestrate_stop")
        await stack.settle()
        progress = progress_reply(stack)
        _, replies = stack.thread()
    tasks = final_tasks(progress)
    assert tasks["plan"]["status"] == "complete"
    stopped = [t for t in tasks.values() if t["status"] == "error"]
    assert stopped and all("stopped by <@U0ALICE>" in t["details"] for t in stopped)
    assert tasks["review"]["status"] == "error"
    assert progress.stream.stopped
    assert progress.markdown_text.startswith("■ Stopped by <@U0ALICE>")
    assert "Stopped by <@U0ALICE>" in replies[-1].text  # the thread's own notice still ends it


async def test_where_streaming_is_refused_the_progress_is_a_message_kept_current(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, time_scale=0.25, progress=True) as stack:
        stack.slack.fail_next("chat.startStream", error="access_denied")
        await stack.command(QUESTION)
        await stack.settle()
        top, replies = stack.thread()
        progress = replies[0]
        updates = [c for c in stack.slack.calls_to("chat.update") if c.args["ts"] == progress.ts]
        status_calls = stack.slack.calls_to("assistant.threads.setStatus")
    assert progress.stream is None and "Progress" in progress.text
    shown = str(progress.blocks)
    assert "✓ *Opus*: strategy" in shown and "✓ *Sonnet*: review" in shown
    assert "⏳" not in shown and "Done in" in shown
    assert updates and updates[-1].ok  # the final update is always sent
    assert not any(c.method == "chat.appendStream" for c in stack.slack.calls)
    # The progress post cleared the loading status: it was set again after it.
    posted = next(
        c.at
        for c in stack.slack.calls_to("chat.postMessage")
        if c.ok and c.args.get("thread_ts") == top.ts
    )
    assert any(c.at > posted and c.args["status"] for c in status_calls)
    # The run itself is whole: examples and review posted, the top message done.
    assert "Done in" in top.text and "Reviewed by" in str(replies[-1].blocks)


async def test_a_stream_that_expires_mid_run_is_updated_in_place_instead(tmp_path: Path) -> None:
    slack = SlackSandbox(stream_ttl_s=0.5)
    async with slack, running_stack(tmp_path, slack=slack, time_scale=0.25, progress=True) as stack:
        await stack.command(QUESTION)
        await stack.settle()
        top, replies = stack.thread()
        progress = replies[0]
        expired = [c for c in stack.slack.calls if c.error == "message_not_in_streaming_state"]
        updates = [c for c in stack.slack.calls_to("chat.update") if c.args["ts"] == progress.ts]
    assert expired and progress.stream is not None  # it began as a stream
    # It expired mid-run (an append refused) and was kept current from then on, not only
    # replaced at the end: the final update is not its first.
    assert expired[0].method == "chat.appendStream"
    assert len(updates) >= 2 and all(c.ok for c in updates)
    shown = str(progress.blocks)
    assert "✓ *Opus*: strategy" in shown and "✓ *Sonnet*: review" in shown and "Done in" in shown
    assert "Done in" in top.text and "Reviewed by" in str(replies[-1].blocks)


async def test_a_progress_stream_that_slack_cannot_take_never_fails_the_run(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, time_scale=0.25, progress=True) as stack:
        stack.slack.fail_next("chat.appendStream", error="messaging_processing_failed", times=50)
        stack.slack.fail_next("chat.stopStream", error="messaging_processing_failed", times=5)
        await stack.command(QUESTION)
        await asyncio.wait_for(stack.settle(), 30)
        top, replies = stack.thread()
        refused = [c for c in stack.slack.calls if c.error == "messaging_processing_failed"]
    assert any(c.method == "chat.startStream" and c.ok for c in stack.slack.calls)
    assert {c.method for c in refused} == {"chat.appendStream", "chat.stopStream"}
    # The run and its thread are whole all the same.
    assert "Done in" in top.text and "Reviewed by" in str(replies[-1].blocks)


async def test_a_spent_start_budget_delays_the_stream_to_the_next_step_or_leaves_it_out(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, time_scale=0.25, progress=True) as stack:
        # No start left now; the next comes in about a second (the plan takes longer).
        stack.services.runs._stream_pacing.starts = TokenBucket(60 / 60, 1, start=0)
        await stack.command(QUESTION)
        await stack.settle()
        _, replies = stack.thread()
        (start,) = [c for c in stream_calls(stack) if c.method == "chat.startStream"]
    first = {c["id"]: c["status"] for c in start.args["chunks"] if c["type"] == "task_update"}
    assert first["plan"] == "complete"  # opened with the step after the one it missed
    assert replies[0].stream is not None and replies[0].stream.stopped

    async with running_stack(tmp_path / "none", time_scale=0.25, progress=True) as stack:
        stack.services.runs._stream_pacing.starts = TokenBucket(0.001 / 60, 1, start=0)
        await stack.command(QUESTION)
        await stack.settle()
        top, replies = stack.thread()
    assert not stream_calls(stack)  # none to be had: no progress message, the run whole
    assert all(r.stream is None for r in replies) and "Done in" in top.text


async def test_a_spent_append_budget_never_holds_up_the_end_of_the_stream(tmp_path: Path) -> None:
    async with running_stack(tmp_path, time_scale=0.25, progress=True) as stack:
        stack.services.runs._stream_pacing.appends = TokenBucket(0.001 / 60, 1, start=0)
        await stack.command(QUESTION)
        await asyncio.wait_for(stack.settle(), 20)
        progress = progress_reply(stack)
        methods = [c.method for c in stream_calls(stack)]
    assert methods == ["chat.startStream", "chat.stopStream"]  # what changed went with the stop
    assert progress.stream.stopped
    assert all(t["status"] == "complete" for t in final_tasks(progress).values())


async def test_a_run_cancelled_before_it_could_end_leaves_no_progress_task_behind(
    tmp_path: Path,
) -> None:
    # The run's first loading status waits out a 429 when the bot shuts down: the run is
    # cancelled before the pipeline has said anything that ends it, its progress already open.
    async with running_stack(tmp_path, progress=True, drain_grace_s=0.2) as stack:
        stack.slack.fail_next("assistant.threads.setStatus", status=429, retry_after=30)
        await stack.command(QUESTION)
        async with asyncio.timeout(10):
            while not any(c.method == "chat.startStream" for c in stack.slack.calls):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("progress-")]
    assert left == []


async def quiet_run(tmp_path: Path, slack: SlackSandbox) -> tuple[Stack, Any, list[Any]]:
    """A run whose examples take 3 s each to start answering: its progress stream has nothing
    new to show for that long. Returns the stack (closed), the progress message and calls."""
    async with slack, running_stack(tmp_path, slack=slack, time_scale=0.05, progress=True) as stack:
        stack.claude.add_rule(role="example", delay_s=3.0)
        await stack.command(QUESTION)
        await asyncio.wait_for(stack.settle(), 60)
        _, replies = stack.thread()
    return stack, replies[0], list(stack.slack.calls)


async def test_a_quiet_progress_stream_is_kept_alive_until_the_run_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slack ends a stream after a while without appends (scaled: 1.5 s, above the app's 1 s
    # between appends); the app appends an unchanged chunk after 0.3 s of quiet, so the
    # stream lives to be stopped with its summary.
    monkeypatch.setattr(progress, "KEEPALIVE_S", 0.3)
    _, message, calls = await quiet_run(tmp_path, SlackSandbox(stream_idle_s=1.5))
    assert not [c for c in calls if c.error == "message_not_in_streaming_state"]
    stops = [c for c in calls if c.method == "chat.stopStream"]
    assert len(stops) == 1 and stops[0].ok
    appends = [c.at for c in calls if c.method == "chat.appendStream" and c.ok]
    started = next(c.at for c in calls if c.method == "chat.startStream" and c.ok)
    # Never a gap as long as Slack's idle limit between the stream's calls.
    assert all(b - a < 1.5 for a, b in itertools.pairwise([started, *appends, stops[0].at]))
    assert "Done in" in str(message.chunks)


async def test_a_stream_near_its_lifetime_is_retired_and_kept_current_as_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slack ends any stream about five minutes after it began (scaled: 2 s); the app stops it
    # itself before that (scaled: 0.8 s) and carries the progress on with chat.update.
    monkeypatch.setattr(progress, "KEEPALIVE_S", 0.2)
    monkeypatch.setattr(progress, "STREAM_LIFETIME_S", 0.8)
    slack = SlackSandbox(stream_ttl_s=2.0, stream_idle_s=100.0)
    _, message, calls = await quiet_run(tmp_path, slack)
    assert not [c for c in calls if c.error == "message_not_in_streaming_state"]
    started = next(c.at for c in calls if c.method == "chat.startStream" and c.ok)
    stops = [c for c in calls if c.method == "chat.stopStream"]
    assert len(stops) == 1 and stops[0].ok and stops[0].at - started < 2.0
    updates = [c for c in calls if c.method == "chat.update" and c.args["ts"] == message.ts]
    assert updates and all(c.ok for c in updates)
    assert "Done in" in str(message.blocks)
