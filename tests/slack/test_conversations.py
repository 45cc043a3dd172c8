"""Scenario tests: the thread is a conversation. Mentions and the message shortcut, driven
over Socket Mode and signed HTTP against both sandboxes, read back from the workspace, the
Claude stand-in's recorded requests and the ledger."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from blocks import FOLLOWUPS_BLOCK_ID, STOP_ACTION, format_usd
from bot.core.usage import CallRecord, TokenUsage
from bot.sandbox.slack.server import Message
from bot.slack.shortcuts import CALLBACK_ID
from tests.harness import Mode, Stack, running_stack

MODES: list[Mode] = ["socket", "http"]
FAR = datetime(2100, 1, 1, tzinfo=UTC)
QUESTION = "Design a REST API for a social network"


def all_text(message: Any) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110  # the sandbox has no notification for this
            await asyncio.sleep(0.02)


async def deliver(stack: Stack, event: dict[str, Any], **retry: Any) -> None:
    """Send an Events API callback the way this stack's mode receives it."""
    if stack.events_url is None:
        ack = await stack.slack.send_event(event, **retry)
        assert not ack.timed_out
    else:
        status, _, _ = await stack.slack.post_event_http(stack.events_url, event, **retry)
        assert status == 200


async def mention(
    stack: Stack, text: str, *, thread_ts: str | None = None, user_id: str = "U0ALICE"
) -> Message:
    message, event = stack.slack.typed_mention(
        f"@orchestrate {text}", thread_ts=thread_ts, user_id=user_id
    )
    await deliver(stack, event)
    return message


async def shortcut(stack: Stack, message: Message, *, user_id: str = "U0ALICE") -> None:
    if stack.events_url is None:
        ack = await stack.slack.send_message_shortcut(
            message, callback_id=CALLBACK_ID, user_id=user_id
        )
        assert not ack.timed_out
    else:
        status, _, _ = await stack.slack.post_message_shortcut_http(
            stack.events_url, message, callback_id=CALLBACK_ID, user_id=user_id
        )
        assert status == 200


async def settled(stack: Stack, condition: Callable[[], bool]) -> None:
    await until(condition)
    await stack.services.runs.wait_idle()


def bot_replies(stack: Stack, thread_ts: str) -> list[Message]:
    return [m for m in stack.slack.replies("C0GENERAL", thread_ts) if m.bot_id == "B0BOT"]


def marks(stack: Stack, thread_ts: str, kind: str) -> list[str]:
    messages = [stack.slack.workspace.find("C0GENERAL", thread_ts)]
    messages += stack.slack.replies("C0GENERAL", thread_ts)
    return [
        m.metadata["event_payload"]["run_id"]
        for m in messages
        if m is not None and m.metadata and m.metadata["event_type"] == kind
    ]


async def a_finished_run(stack: Stack) -> str:
    """A /orchestrate run, finished; returns its thread's ts."""
    await stack.command(QUESTION)
    await stack.settle()
    top, replies = stack.thread()
    assert "Review" in all_text(replies[-1])
    return str(top.ts)


def plan_requests(stack: Stack) -> list[str]:
    return [
        json.dumps(r.body, ensure_ascii=False) for r in stack.claude.requests if r.role == "plan"
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_a_follow_up_redoes_one_component_with_the_examples_model(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        root = await a_finished_run(stack)
        before = len(bot_replies(stack, root))
        await mention(stack, "can you redo 2 in Go?", thread_ts=root)
        await settled(stack, lambda: len(bot_replies(stack, root)) > before)
        reply = bot_replies(stack, root)[before]
        (run_id,) = marks(stack, root, "orchestrate_run")
        followups = await stack.services.ledger.runs.followups(run_id)
        last = stack.claude.requests[-1]
    text = all_text(reply)
    assert "Component 2, redone" in text and "<@U0ALICE>" in text
    assert "Haiku" in text and "claude-haiku-5-5" in text and "$0." in text
    assert last.model == "claude-haiku-5-5" and last.role == "example"
    assert "redo 2 in Go" in json.dumps(last.body)
    assert followups.count == 1 and followups.cost_usd > 0


@pytest.mark.parametrize("mode", MODES)
async def test_a_question_is_answered_by_the_review_model(tmp_path: Path, mode: Mode) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        root = await a_finished_run(stack)
        before = len(bot_replies(stack, root))
        await mention(stack, "what are we missing on auth?", thread_ts=root)
        await settled(stack, lambda: len(bot_replies(stack, root)) > before)
        reply = bot_replies(stack, root)[before]
        last = stack.claude.requests[-1]
    assert last.model == "claude-sonnet-5-5" and last.role == "answer"
    text = all_text(reply)
    assert "Answered by Sonnet" in text and "what are we missing on auth?" in text
    # The model read the run from the thread: the strategy and review were in its context.
    context = json.dumps(last.body, ensure_ascii=False)
    assert 'from=\\"orchestrate\\"' in context and "Review" in context


@pytest.mark.parametrize("mode", MODES)
async def test_a_rethink_writes_a_new_strategy_with_examples_and_review_in_the_thread(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        root = await a_finished_run(stack)
        await mention(stack, "rethink the whole approach for a tiny team", thread_ts=root)
        await settled(stack, lambda: len(marks(stack, root, "orchestrate_footer")) == 2)
        runs = marks(stack, root, "orchestrate_run")
        child = await stack.services.ledger.runs.get_run(runs[1])
        totals = await stack.services.ledger.runs.followups(runs[0])
        footer = [m for m in stack.slack.replies("C0GENERAL", root) if m.metadata][-1]
    assert len(runs) == 2 and child is not None and child.parent_run_id == runs[0]
    assert child.status == "finished" and totals.count == 1
    assert len([r for r in stack.claude.requests if r.role == "plan"]) == 2
    assert "rethink the whole approach" in plan_requests(stack)[-1]
    assert "Review" in all_text(footer)


@pytest.mark.parametrize("mode", MODES)
async def test_a_mention_in_a_channel_runs_the_pipeline_in_its_thread(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        asked = await mention(stack, QUESTION)
        await settled(stack, lambda: bool(marks(stack, asked.ts, "orchestrate_footer")))
        replies = bot_replies(stack, asked.ts)
        (run_id,) = marks(stack, asked.ts, "orchestrate_run")
        run = await stack.services.ledger.runs.get_run(run_id)
    assert run is not None and run.user_id == "U0ALICE" and run.thread_ts == asked.ts
    assert run.status == "finished" and run.parent_run_id is None
    assert QUESTION in all_text(replies[0]) and "Review" in all_text(replies[-1])
    assert len(stack.slack.messages("C0GENERAL")) == 1  # nothing posted outside the thread


@pytest.mark.parametrize("mode", MODES)
async def test_a_discussion_becomes_a_run_whose_strategy_saw_the_discussion(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        ws = stack.slack.workspace
        top = ws.post_as("U0BOB", "C0GENERAL", "We need a booking system for 3 clinics")
        ws.post_as("U0ADMIN", "C0GENERAL", "Must work offline &amp; sync later", thread_ts=top.ts)
        ws.post_as("U0BOB", "C0GENERAL", "Budget: one engineer", thread_ts=top.ts)
        await mention(stack, "turn this into a plan", thread_ts=top.ts)
        await settled(stack, lambda: bool(marks(stack, top.ts, "orchestrate_footer")))
        plan = plan_requests(stack)[0]
    assert "We need a booking system for 3 clinics" in plan
    # Slack's entity decoded, then escaped once as data: never double-escaped.
    assert "Must work offline &amp; sync later" in plan and "&amp;amp;" not in plan
    assert 'author=\\"U0ADMIN\\" from=\\"person\\"' in plan
    assert "<question>turn this into a plan</question>" in plan


@pytest.mark.parametrize("mode", MODES)
async def test_the_message_shortcut_plans_a_discussion_in_its_thread(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        ws = stack.slack.workspace
        top = ws.post_as("U0BOB", "C0GENERAL", "How should we version the mobile API?")
        reply = ws.post_as("U0ALICE", "C0GENERAL", "Header-based, I think", thread_ts=top.ts)
        await shortcut(stack, reply)
        await settled(stack, lambda: bool(marks(stack, top.ts, "orchestrate_footer")))
        plan = plan_requests(stack)[0]
    assert "How should we version the mobile API?" in plan and "Header-based" in plan


@pytest.mark.parametrize("mode", MODES)
async def test_a_thread_the_bot_cannot_read_gets_one_private_answer(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        secret = stack.slack.workspace.post_as("U0ALICE", "G0PRIVATE", "our plans")
        await shortcut(stack, secret)
        await settled(stack, lambda: bool(stack.slack.ephemerals("U0ALICE")))
        (told,) = stack.slack.ephemerals("U0ALICE")
    assert "can't read this thread" in told.text and "/invite" in told.text
    assert stack.claude.requests == []
    assert stack.slack.messages("G0PRIVATE") == [secret]


@pytest.mark.parametrize("mode", MODES)
async def test_a_retried_mention_is_answered_once(tmp_path: Path, mode: Mode) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        asked, event = stack.slack.typed_mention(f"@orchestrate {QUESTION}")
        await deliver(stack, event, event_id="Ev0RETRIED")
        await deliver(stack, event, event_id="Ev0RETRIED", retry_num=1)
        await deliver(stack, event, event_id="Ev0RETRIED", retry_num=2)
        await settled(stack, lambda: bool(marks(stack, asked.ts, "orchestrate_footer")))
        await asyncio.sleep(0.2)
    assert len(marks(stack, asked.ts, "orchestrate_run")) == 1
    assert len([r for r in stack.claude.requests if r.role == "plan"]) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_another_bots_mention_is_never_answered(tmp_path: Path, mode: Mode) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        root = await a_finished_run(stack)
        before = len(bot_replies(stack, root))
        _, event = stack.slack.typed_mention(
            "@orchestrate what about auth?", user_id="U0HELPER", thread_ts=root
        )
        await deliver(stack, event)
        await asyncio.sleep(0.3)
        await stack.services.runs.wait_idle()
    assert event["bot_id"] == "B0HELPER"
    assert len(bot_replies(stack, root)) == before
    assert not [r for r in stack.claude.requests if r.role == "answer"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_teammates_channel_ping_in_the_thread_is_never_posted_live(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        root = await a_finished_run(stack)
        hostile = (
            "<!channel> ship it <!here> @everyone <https://evil.example|docs> &lt;!channel&gt;"
        )
        stack.slack.workspace.post_as("U0BOB", "C0GENERAL", hostile, thread_ts=root)
        before = len(bot_replies(stack, root))
        await mention(stack, "is this review right?", thread_ts=root)
        await settled(stack, lambda: len(bot_replies(stack, root)) > before)
        answer = bot_replies(stack, root)[before]
        context = json.dumps(stack.claude.requests[-1].body, ensure_ascii=False)
    assert "@channel ship it @here" in context  # the model read it, as data
    text = all_text(answer)
    assert "ship it" in text  # the stand-in quoted the teammate back
    assert "<!" not in text and "<https://evil" not in text
    assert not re.search(r"(?<![\w\u2060])@(here|channel|everyone)\b", text)


@pytest.mark.parametrize("mode", MODES)
async def test_the_footer_and_the_ledger_agree_to_the_nano_dollar(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        root = await a_finished_run(stack)
        (run_id,) = marks(stack, root, "orchestrate_run")
        for n, ask in enumerate(("what about auth?", "redo 1 with retries"), start=1):
            await mention(stack, ask, thread_ts=root)
            await settled(stack, lambda n=n: _footer_count(stack, root) == n)
        ledger = stack.services.ledger
        run = await ledger.runs.get_run(run_id)
        totals = await ledger.runs.followups(run_id)
        assert run is not None
        report = await ledger.reports.summary("T0SANDBOX", since=run.started_at, until=FAR)
        requests = [r for r in stack.claude.requests if r.endpoint == "messages"]
    assert totals.count == 2
    # Each amendment gave the feedback buttons a new block_id (the stand-in refuses a reused
    # one on an update, as Slack's reference asks): they are still under the review.
    (feedback,) = [
        b
        for m in stack.slack.replies("C0GENERAL", root)
        for b in m.blocks
        if b.get("type") == "context_actions"
    ]
    assert feedback["block_id"] == f"feedback-{run_id}.2"
    line = _footer_line(stack, root)
    expected = (
        f"*Total {format_usd(run.cost_usd)} + 2 follow-ups {format_usd(totals.cost_usd)} = "
        f"{format_usd(run.cost_usd + totals.cost_usd)}*"
    )
    assert line == expected
    # Every call the Claude stand-in answered is in the ledger, and the footer's total is the
    # ledger's, to the nano-dollar.
    assert report.calls == len(requests) and report.unpriced_calls == 0
    assert run.cost_usd + totals.cost_usd == report.total_usd
    assert report.total_usd == report.total_usd.quantize(Decimal("1e-9"))


def _footer_count(stack: Stack, root: str) -> int:
    line = _footer_line(stack, root)
    match = re.search(r"\+ (\d+) follow-up", line)
    return int(match.group(1)) if match else 0


def _footer_line(stack: Stack, root: str) -> str:
    for message in stack.slack.replies("C0GENERAL", root):
        for block in message.blocks:
            if block.get("block_id") == FOLLOWUPS_BLOCK_ID:
                return str(block["elements"][0]["text"])
    return ""


@pytest.mark.parametrize("mode", MODES)
async def test_follow_ups_in_one_thread_are_answered_one_at_a_time_in_order(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        root = await a_finished_run(stack)
        before = len(bot_replies(stack, root))
        asks = ["what about auth?", "add one on rate limiting", "is the review fair?"]
        await asyncio.gather(*(mention(stack, ask, thread_ts=root) for ask in asks))
        await settled(stack, lambda: len(bot_replies(stack, root)) >= before + 3)
        replies = [all_text(m) for m in bot_replies(stack, root)[before:]]
        calls = [r for r in stack.claude.requests if r.role in ("answer", "example")][-3:]
    # Each answer names its request; they come back in the order the mentions were posted.
    order = [next(i for i, ask in enumerate(asks) if f"asked: _{ask}_" in text) for text in replies]
    assert order == sorted(order) == [0, 1, 2]
    # One at a time: no call started before the previous one's answer was in.
    assert all(b.started >= (a.finished or 0) for a, b in itertools.pairwise(calls))


async def test_a_follow_up_does_not_wait_for_the_first_messages_queued_last_edit(
    tmp_path: Path,
) -> None:
    # chat.update is paced per workspace: under load a run's last edit of its first message
    # can wait a minute in the queue after its review is posted. The thread's conversation
    # waits for the run's messages, not for that edit. Here the workspace's edits are scaled
    # down (5 in any 20 s: a burst of one, then one every ~5 s).
    async with running_stack(tmp_path, slack_update_limit=5, slack_update_window_s=20.0) as stack:
        await stack.command(QUESTION)
        # The command is acknowledged before its first message is posted: wait for that too.
        await until(
            lambda: (
                bool(stack.slack.messages("C0GENERAL"))
                and any("Review" in all_text(m) for m in stack.thread()[1])
            )
        )
        top = stack.thread()[0]
        before = len(bot_replies(stack, top.ts))
        await mention(stack, "what about auth?", thread_ts=top.ts)
        await until(lambda: len(bot_replies(stack, top.ts)) > before)
        answered = stack.thread()[0]
        # The answer is in while the first message's final edit is still queued.
        assert STOP_ACTION in json.dumps(answered.blocks)
        assert "asked: _what about auth?_" in all_text(bot_replies(stack, top.ts)[before])
        await stack.services.runs.wait_idle()
        # And that edit still lands: the run's first message ends in its final state.
        assert STOP_ACTION not in json.dumps(stack.thread()[0].blocks)


@pytest.mark.parametrize("mode", MODES)
async def test_a_long_thread_is_cut_oldest_first_and_the_reply_says_so(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode, thread_context_tokens=1500) as stack:
        root = await a_finished_run(stack)
        for n in range(40):
            stack.slack.workspace.post_as(
                "U0BOB", "C0GENERAL", f"point {n} " + "z" * 80, thread_ts=root
            )
        before = len(bot_replies(stack, root))
        await mention(stack, "so what do we do first?", thread_ts=root)
        await settled(stack, lambda: len(bot_replies(stack, root)) > before)
        reply = all_text(bot_replies(stack, root)[before])
        sent = json.dumps(stack.claude.requests[-1].body, ensure_ascii=False)
    assert "older messages in between were left out" in reply
    assert "<omitted messages=" in sent
    assert "point 39 " in sent and "point 0 " not in sent  # the oldest went first


@pytest.mark.parametrize("mode", MODES)
async def test_a_follow_up_over_the_askers_budget_is_refused_before_any_model_call(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode, budget_user_daily_usd=Decimal("0.50")) as stack:
        root = await a_finished_run(stack)
        calls_before = len(stack.claude.requests)
        ledger = stack.services.ledger.runs
        spent = await ledger.start_run(
            team_id="T0SANDBOX", channel_id="C0GENERAL", user_id="U0BOB", question="earlier"
        )
        record = CallRecord(
            role="plan", model="claude-opus-5-5", usage=TokenUsage(1, 1),
            cost_usd=Decimal("0.49"), latency_s=1.0, outcome="ok", request_id="req_earlier",
        )  # fmt: skip
        await ledger.record_call(spent, record)
        await ledger.finish_run(spent, "finished", elapsed_s=1.0)
        await mention(stack, "what about auth?", thread_ts=root, user_id="U0BOB")
        await settled(stack, lambda: bool(stack.slack.ephemerals("U0BOB")))
        (told,) = stack.slack.ephemerals("U0BOB")
    assert "budget" in told.text and len(stack.claude.requests) == calls_before
