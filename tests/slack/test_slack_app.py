"""Scenario tests: `/orchestrate` end to end, the real app against both sandboxes.

Every test drives the app only through Slack's wire (Socket Mode envelopes or signed HTTP
posts to `/slack/events`) and reads the result from the Slack sandbox's workspace.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from bot.ledger import open_ledger
from bot.sandbox.slack.manifest import load_manifest
from bot.sandbox.slack.server import SlackSandbox
from bot.slack.runs import RunOrder
from tests.harness import Mode, running_stack

QUESTION = "Design a REST API for a social network"
HOSTILE = "<!channel> ping <!here> and @here and @everyone, see <https://evil.example|docs>"


def all_text(message: Any) -> str:
    """Everything Slack would display or notify for a message: text and every block."""
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


def assert_harmless(text: str) -> None:
    assert "<!" not in text
    assert "<https://evil" not in text
    assert not re.search(r"(?<![\w\u2060])@(here|channel|everyone)\b", text)


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_question_becomes_a_strategy_with_threaded_examples_and_a_review(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        ack_latency = await stack.command(QUESTION)
        await stack.settle()

        top, replies = stack.thread()
        statuses = [c.args.get("text", "") for c in stack.slack.calls_to("chat.update")]
    assert ack_latency < 1.0
    # The top message tells where the run is: planning, illustrating, reviewing, done.
    assert [
        s for s in ("is writing", "is reviewing", "Done in") if any(s in t for t in statuses)
    ] == ["is writing", "is reviewing", "Done in"]
    assert "Strategy · Opus" in all_text(top)
    assert "claude-opus-5-5" in all_text(top)
    assert "Done in" in all_text(top) and top.edited_ts is not None
    examples = [r for r in replies if "Illustrated by Haiku" in all_text(r)]
    plans = [r for r in stack.claude.requests if r.role == "plan"]
    assert len(plans) == 1 and len(examples) == len(component_names(top)) >= 2
    review = replies[-1]
    assert "Reviewed by Sonnet" in all_text(review)
    assert re.search(r"Total \$\d+\.\d{4}", all_text(review))
    assert "all on Opus" in all_text(review)
    assert all(r.thread_ts == top.ts for r in replies)
    assert all(r.unfurl_links is False for r in replies)


def component_names(top: Any) -> list[str]:
    """The components listed on a strategy message ("*1. Name*")."""
    return re.findall(r"\*\d\. ([^*]+)\*", all_text(top))


async def test_examples_are_posted_as_they_arrive_not_when_the_last_is_done(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.claude.add_rule(role="example", delay_s=2.0, times=1)
        await stack.command(QUESTION)
        await stack.settle()

        slowest_done = max(r.finished for r in stack.claude.requests if r.role == "example")
        posts = [c for c in stack.slack.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert posts[0].at < slowest_done - 1.5


async def test_a_burst_of_questions_is_each_acknowledged_before_its_run_starts(
    tmp_path: Path,
) -> None:
    # A run's start (the engine's database work, on the app's event loop) waits until its
    # ack has left: started at once, a burst's first runs held its last acks back
    # (BENCHMARKS.md, "Acks first"). Started in the handler, or in a task right after the
    # ack, a run starts before Bolt's runner (it looks for the ack every 10 ms) has sent its
    # ack: each command's own order fails there, without hanging on how fast this machine
    # sends a burst (the burst's p99 is bench_slack's). No wire shows a workflow's start to
    # the millisecond, so the engine's `start` is watched (and called through). chat.update's
    # 50 a minute is lifted, or the runs' last edits would take half a minute.
    slack = SlackSandbox(update_limit=None)
    async with running_stack(tmp_path, slack=slack, slack_update_limit=1000) as stack:
        workspace = stack.slack.workspace
        channels = [f"C0BURST{i:02d}" for i in range(20)]
        for channel in channels:
            workspace.add_channel(
                channel, channel.lower(), members={"U0ALICE", workspace.bot_user_id}
            )
        engine, started = stack.services.runs.engine, {}
        start = engine.start

        async def watched(workflow_id: str, workflow: Any, order: RunOrder) -> Any:
            started[order.request.channel_id] = time.time()
            return await start(workflow_id, workflow, order)

        engine.start = watched  # type: ignore[method-assign]
        acks = await asyncio.gather(
            *(
                stack.slack.send_slash_command(text=QUESTION, user_id="U0ALICE", channel_id=c)
                for c in channels
            )
        )
        await stack.settle(runs=20, ephemerals=99)
    assert sorted(started) == channels
    late = [c for c, ack in zip(channels, acks, strict=True)
            if ack.acked_at is None or ack.acked_at >= started[c]]  # fmt: skip
    assert late == []


async def test_model_and_user_text_cannot_ping_or_forge_links(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.claude.add_rule(
            role="example",
            times=1,
            text=f"# Danger\n\n{HOSTILE}\n\n```python\nprint('<!here>')\n```",
        )
        await stack.command(f"{QUESTION} {HOSTILE}")
        await stack.settle()

        top, replies = stack.thread()
        transcript = stack.slack.transcript("C0GENERAL")
    for message in [top, *replies]:
        assert_harmless(all_text(message))
    assert "<!channel> ping" in transcript  # shown to people as literal text
    assert "print('<!here>')" in transcript  # code survives intact


async def test_a_20000_character_example_is_split_across_messages_with_nothing_lost(
    tmp_path: Path,
) -> None:
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 30 for i in range(20)]
    code = "```python\n" + "\n".join(f"line_{i} = {i}  # keep" for i in range(200)) + "\n```"
    long_example = (
        "# Big one\n\n"
        + "\n\n".join(paragraphs[:10])
        + "\n\n"
        + code
        + "\n\n"
        + "\n\n".join(paragraphs[10:])
    )
    assert len(long_example) > 20_000
    async with running_stack(tmp_path) as stack:
        stack.claude.add_rule(role="example", times=1, text=long_example)
        await stack.command(QUESTION)
        await stack.settle()

        transcript = stack.slack.transcript("C0GENERAL")
        _, replies = stack.thread()
    assert any("(continued 2/" in all_text(r) for r in replies)
    for i in range(20):
        assert f"Paragraph {i}: " in transcript
    for i in range(200):
        assert f"line_{i} = {i}  # keep" in transcript


async def test_claude_529s_a_failing_example_and_slack_429s_are_all_survived(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, anthropic_max_retries=2) as stack:
        stack.claude.add_rule(role="plan", fault="overloaded", times=1, retry_after_s=0.01)
        stack.claude.add_rule(role="review", fault="overloaded", times=1, retry_after_s=0.01)
        stack.slack.fail_next("chat.postMessage", status=429, retry_after=1, times=2)
        await stack.command(QUESTION)
        await stack.settle()
        names = component_names(stack.slack.messages("C0GENERAL")[-1])
        doomed = names[0]

        stack.claude.add_rule(
            role="example", contains=f'name="{doomed}"', fault="server_error", retry_after_s=0.01
        )
        stack.slack.fail_next("chat.postMessage", status=429, retry_after=1, times=1)
        await stack.command(QUESTION)
        await stack.settle(runs=2)

        top, replies = stack.thread()
        texts = [all_text(r) for r in replies]
    assert sum("Illustrated by Haiku" in t for t in texts) == len(names) - 1
    assert sum("could not be illustrated:" in t for t in texts) == 1
    assert "Reviewed by Sonnet" in texts[-1]
    assert "Done in" in all_text(top)
    # Nothing posted twice: one reply per component plus the review.
    assert len(replies) == len(names) + 1


async def test_posts_to_one_channel_are_paced_so_parallel_examples_never_hit_429(
    tmp_path: Path,
) -> None:
    slack = SlackSandbox(post_rate_per_channel=1.0)
    async with running_stack(tmp_path, slack=slack, slack_posts_per_s=1.0) as stack:
        await stack.command(QUESTION)
        await stack.settle()
        refused = [c for c in stack.slack.calls_to("chat.postMessage") if c.status == 429]
        _, replies = stack.thread()
    assert refused == []
    assert "Reviewed by Sonnet" in all_text(replies[-1])


async def test_help_and_empty_commands_answer_ephemerally_without_calling_a_model(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.command("help")
        await stack.command("")
        await stack.settle(ephemerals=2)
        ephemerals = stack.slack.ephemerals("U0ALICE")
    assert len(ephemerals) == 2
    assert all("/orchestrate" in e.text for e in ephemerals)
    assert stack.claude.requests == []
    assert stack.slack.messages("C0GENERAL") == []


async def test_a_question_over_the_limit_is_refused_with_the_limit_and_no_model_call(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, max_question_chars=100) as stack:
        await stack.command("x" * 101)
        await stack.settle()
        ephemerals = stack.slack.ephemerals("U0ALICE")
    assert len(ephemerals) == 1 and "100" in ephemerals[0].text
    assert stack.claude.requests == []
    assert stack.slack.messages("C0GENERAL") == []


async def test_a_public_channel_without_the_bot_is_joined(tmp_path: Path) -> None:
    slack = SlackSandbox(scopes=load_manifest().bot_scopes - {"chat:write.public"})
    async with running_stack(tmp_path, slack=slack) as stack:
        await stack.command(QUESTION, channel_id="C0RANDOM")
        await stack.settle()
        joined = stack.slack.calls_to("conversations.join")
        _, replies = stack.thread("C0RANDOM")
    assert [c.ok for c in joined] == [True]
    assert "Reviewed by Sonnet" in all_text(replies[-1])


async def test_a_private_channel_without_the_bot_gets_invite_advice_and_no_model_call(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.command(QUESTION, channel_id="G0PRIVATE")
        await stack.settle()
        ephemerals = stack.slack.ephemerals("U0ALICE")
        async with open_ledger(stack.settings.database_url) as ledger:
            report = await ledger.reports.summary("T0SANDBOX", since=_epoch(), until=_future())
    assert len(ephemerals) == 1 and "/invite @orchestrate" in ephemerals[0].text
    assert stack.claude.requests == []
    assert report.calls == 0


async def test_a_dm_with_the_bot_runs_the_whole_flow(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.command(QUESTION, channel_id="D0ALICE")
        await stack.settle()
        _, replies = stack.thread("D0ALICE")
    assert "Reviewed by Sonnet" in all_text(replies[-1])


async def test_a_request_with_a_bad_or_stale_signature_is_refused_and_calls_no_model(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        forged, _, _ = await stack.slack.post_slash_command_http(
            stack.events_url, text=QUESTION, secret="not-the-secret"
        )
        stale, _, _ = await stack.slack.post_slash_command_http(
            stack.events_url, text=QUESTION, timestamp=int(time.time()) - 600
        )
        await stack.settle(runs=0)
    assert (forged, stale) == (401, 401)
    assert stack.claude.requests == []
    assert stack.slack.messages("C0GENERAL") == []


async def test_healthz_answers_200_once_ready(tmp_path: Path) -> None:
    import aiohttp

    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        url = stack.events_url.replace("/slack/events", "/healthz")
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            body = await response.json()
    assert response.status == 200 and body["ok"] is True


async def test_shutdown_suspends_runs_in_flight_and_the_restart_finishes_them(
    tmp_path: Path,
) -> None:
    """A shutdown closes the calls in flight and records what they spent, but rewrites
    nothing: the run stays open, and the next start resumes it in its own thread, from
    the steps that had finished (the plan is not asked again)."""
    async with SlackSandbox() as slack:
        async with running_stack(tmp_path, slack=slack) as stack:
            stack.claude.add_rule(role="example", delay_s=60)
            await stack.command(QUESTION)
            while sum(r.role == "example" for r in stack.claude.requests) < 2:
                await _tick()
            await _tick(0.3)
            assert stack.services.runs.in_flight == 1  # one run, counted once
            await stack.services.runs.drain(0.0)
            assert stack.services.runs.in_flight == 0
            _, suspended = stack.thread()
            async with open_ledger(stack.settings.database_url) as ledger:
                cut_off = await ledger.reports.summary("T0SANDBOX", since=_epoch(), until=_future())
        assert cut_off.calls >= 3  # the plan and the cut-off examples, recorded
        assert not any("interrupted" in all_text(r).lower() for r in suspended)

        async with running_stack(tmp_path, slack=slack) as restarted:
            async with asyncio.timeout(30):
                while not any("Reviewed by" in all_text(r) for r in restarted.thread()[1]):
                    await _tick(0.05)
            await restarted.services.runs.wait_idle()
            top, replies = restarted.thread()
            plans = [r for r in restarted.claude.requests if r.role == "plan"]
    assert plans == []  # the strategy came from its step, not from Opus again
    assert "Done" in all_text(top)
    assert not any("interrupted" in all_text(r).lower() for r in replies)
    assert len(slack.messages("C0GENERAL")) == 1  # one thread


async def test_a_question_acked_as_the_app_shuts_down_is_answered_after_the_restart(
    tmp_path: Path,
) -> None:
    """A question acked just before a shutdown, its run not yet started (it starts 50 ms
    after the ack), is still run, even with no grace: the shutdown waits for the start,
    and the restart finishes the run. Nobody is told it did not start."""
    async with SlackSandbox() as slack:
        async with running_stack(tmp_path, slack=slack) as stack:
            await stack.command(QUESTION)
            await stack.services.runs.drain(0.0)
        async with running_stack(tmp_path, slack=slack) as restarted:
            async with asyncio.timeout(30):
                while not restarted.slack.messages("C0GENERAL") or not any(
                    "Reviewed by" in all_text(r) for r in restarted.thread()[1]
                ):
                    await _tick(0.05)
            await restarted.services.runs.wait_idle()
    assert slack.ephemerals() == []
    assert len(slack.messages("C0GENERAL")) == 1


async def _tick(seconds: float = 0.02) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


def _future() -> Any:
    from datetime import UTC, datetime

    return datetime(2100, 1, 1, tzinfo=UTC)


async def test_msg_too_long_is_recovered_without_losing_what_readers_see(tmp_path: Path) -> None:
    question = QUESTION + ". " + "Consider feeds, follows, likes and moderation. " * 30
    async with running_stack(tmp_path) as stack:
        stack.slack.fail_next("chat.postMessage", error="msg_too_long", times=1)
        await stack.command(question)
        await stack.settle()
        top, replies = stack.thread()
        refused = [c for c in stack.slack.calls_to("chat.postMessage") if not c.ok]
    assert [c.error for c in refused] == ["msg_too_long"]
    assert "Strategy · Opus" in all_text(top)
    assert "moderation" in all_text(top)  # the question is all there, in the blocks
    assert "Reviewed by Sonnet" in all_text(replies[-1])
