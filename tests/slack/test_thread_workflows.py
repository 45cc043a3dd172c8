"""Scenario tests: follow-ups and Retries are durable workflows, ids from what Slack sent.

A mention in a run's thread is queued in that thread's partition of the engine's threads
queue under an id made of the mention's `ts` and its `event_id`; a Retry click starts a
workflow whose id is the button's value and the click's `action_ts`. So a replayed event or
click (Slack's retry, a captured request sent again, a copy delivered to another instance)
answers nothing twice, and a thread's mentions are answered in the order they were posted.
Two instances here are two real apps behind one Slack stand-in, sharing one ledger file
(and so, in one process, one engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator
from pathlib import Path

from bot.sandbox.slack.server import SlackSandbox
from bot.slack.conversations import MAX_ORDER, Request, thread_order
from tests.harness import Stack, running_stack
from tests.slack.test_conversations import (
    a_finished_run,
    all_text,
    bot_replies,
    deliver,
    mention,
    settled,
    until,
)
from tests.slack.test_retry_anywhere import RETRY, examples, retry_value
from tests.slack.test_run_controls import a_failed_example, ephemeral_for


async def test_a_replayed_follow_up_mention_is_answered_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        root = await a_finished_run(stack)
        before = len(bot_replies(stack, root))
        _, event = stack.slack.typed_mention("@orchestrate what about auth?", thread_ts=root)
        for retry_num in (None, 1, 2):  # Slack's retries carry the same event_id
            await deliver(stack, event, event_id="Ev0FOLLOWUP", retry_num=retry_num)
        await settled(stack, lambda: len(bot_replies(stack, root)) > before)
        await asyncio.sleep(0.5)  # a second answer, were one queued, would have started
        await stack.services.runs.wait_idle()
        answers = [m for m in bot_replies(stack, root)[before:] if "what about auth" in all_text(m)]
        calls = [r for r in stack.claude.requests if r.role == "answer"]
        runs = await stack.services.ledger.runs.followups(stack_run_id(stack, root))
    assert len(answers) == 1 and len(calls) == 1
    assert runs.count == 1  # one follow-up admitted and billed


def stack_run_id(stack: Stack, root: str) -> str:
    top = stack.slack.workspace.find("C0GENERAL", root)
    assert top is not None and top.metadata is not None
    return str(top.metadata["event_payload"]["run_id"])


async def test_five_mentions_sent_at_once_in_a_thread_are_answered_in_the_order_sent(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        root = await a_finished_run(stack)
        before = len(bot_replies(stack, root))
        asks = [f"question number {n}: what about part {n}?" for n in range(5)]
        # Posted in this order (each its own ts), then delivered at once: the app sees them
        # in any order, within the same second.
        events = [
            stack.slack.typed_mention(f"@orchestrate {ask}", thread_ts=root)[1] for ask in asks
        ]
        await asyncio.gather(*(deliver(stack, e) for e in reversed(events)))
        await settled(stack, lambda: len(bot_replies(stack, root)) >= before + 5)
        replies = [all_text(m) for m in bot_replies(stack, root)[before:]]
        waits = stack.services.conversations.queue_waits
    order = [next(i for i, ask in enumerate(asks) if f"asked: _{ask}_" in t) for t in replies]
    assert order == [0, 1, 2, 3, 4]
    print(  # the queue's added latency, enqueue → start (the later ones wait their turn)
        f"\nqueue wait: first {waits[0]:.3f}s, median {statistics.median(waits):.3f}s,"
        f" max {max(waits):.3f}s over {len(waits)}"
    )


@contextlib.asynccontextmanager
async def two_on_one_ledger(tmp: Path) -> AsyncIterator[tuple[Stack, Stack]]:
    url = f"sqlite:///{tmp / 'shared-ledger.db'}"
    async with (
        SlackSandbox() as slack,
        running_stack(tmp / "a", mode="http", slack=slack, database_url=url) as first,
        running_stack(tmp / "b", mode="http", slack=slack, database_url=url) as second,
    ):
        yield first, second


async def test_a_replayed_retry_click_on_two_instances_retries_once(tmp_path: Path) -> None:
    async with two_on_one_ledger(tmp_path) as (first, second):
        failed = await a_failed_example(first)
        # The retry fails again: its component stays retriable, so only the button's own
        # identity (not "already illustrated") can keep a replay from retrying again.
        for stack in (first, second):
            stack.claude.add_rule(role="example", fault="refusal", times=1)
        payload = first.slack.click_payload("C0GENERAL", failed.ts, RETRY)
        before = examples(first, second)
        await first.slack.send_interactive(payload, url=first.events_url)
        await ephemeral_for(first, "U0ALICE")
        await first.services.runs.wait_idle()
        # The very same click, replayed to the other instance once the first retry ended,
        # then to the first again.
        await first.slack.send_interactive(payload, url=second.events_url)
        await first.slack.send_interactive(payload, url=first.events_url)
        told = [e.text for e in await ephemeral_for(first, "U0ALICE", count=3)]
        await asyncio.gather(*(s.services.runs.wait_idle() for s in (first, second)))
        after = examples(first, second)
        retried = await first.services.ledger.runs.followups(retry_value(failed).split(":")[0])
    assert after == before + 1  # one model call for the one click
    assert retried.count == 1
    assert told[0].startswith("↻ Retrying")
    assert all("was retried from this button already" in t for t in told[1:])


async def test_follow_ups_queued_at_a_shutdown_are_answered_in_order_after_the_restart(
    tmp_path: Path,
) -> None:
    async with SlackSandbox() as slack:
        async with running_stack(tmp_path, slack=slack) as stack:
            root = await a_finished_run(stack)
            before = len(bot_replies(stack, root))
            stack.claude.add_rule(role="answer", delay_s=60)
            asks = ["what about auth?", "what about paging?"]
            for ask in asks:
                _, event = stack.slack.typed_mention(f"@orchestrate {ask}", thread_ts=root)
                await deliver(stack, event)
            # The first is in its call (the second waits its turn in the thread) when the
            # instance shuts down.
            async with asyncio.timeout(10):
                while not any(r.role == "answer" for r in stack.claude.requests):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            await stack.services.runs.drain(0.0)
            run_id = stack_run_id(stack, root)
        async with running_stack(tmp_path, slack=slack) as restarted:
            await settled(restarted, lambda: len(bot_replies(restarted, root)) >= before + 2)
            replies = [all_text(m) for m in bot_replies(restarted, root)[before:]]
            answered = [r for r in restarted.claude.requests if r.role == "answer"]
            followups = await restarted.services.ledger.runs.followups(run_id)
    order = [next(i for i, ask in enumerate(asks) if f"asked: _{ask}_" in t) for t in replies]
    assert order == [0, 1]  # the one cut off, then the one that waited behind it
    assert len(answered) == 2  # the cut-off call made again, then the second's
    assert followups.count == 2  # each follow-up admitted once, across the restart


async def test_a_follow_up_cut_off_after_part_of_its_answer_landed_posts_each_part_once(
    tmp_path: Path,
) -> None:
    """A follow-up's answer is posted in a step, checkpointed once every part is in the
    thread. Cut off between a part landing and the checkpoint (here: the answer's second
    message held by a 429 when the instance shuts down), the step runs again after the
    restart: it posts only the parts its tags do not show in the thread already."""
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 30 for i in range(14)]
    long_answer = "\n\n".join(paragraphs)  # two messages, within the call's max_tokens
    async with SlackSandbox() as slack:
        async with running_stack(tmp_path, slack=slack) as stack:
            root = await a_finished_run(stack)
            before = len(bot_replies(stack, root))
            stack.claude.add_rule(role="answer", text=long_answer)
            # The first message lands; the second is refused for a minute (Retry-After):
            # the step is still posting when the instance shuts down.
            slack.fail_next("chat.postMessage", status=429, retry_after=60, after=1)
            await mention(stack, "what about auth?", thread_ts=root)
            await until(lambda: any(c.status == 429 for c in slack.calls_to("chat.postMessage")))
            landed = bot_replies(stack, root)[before:]
            await stack.services.runs.drain(0.0)
        async with running_stack(tmp_path, slack=slack) as restarted:
            await settled(restarted, lambda: len(bot_replies(restarted, root)) >= before + 2)
            await asyncio.sleep(0.5)  # a duplicate, were one coming, would be posted by now
            await restarted.services.runs.wait_idle()
            answer = bot_replies(restarted, root)[before:]
            asked = [r for r in restarted.claude.requests if r.role == "answer"]
    assert len(landed) == 1 and "Paragraph 0: " in all_text(landed[0])
    assert [m.ts for m in answer[:1]] == [landed[0].ts]  # the part that had landed, kept
    assert len(answer) == 2  # and only the part that had not, posted after the restart
    assert "Paragraph 13: " in all_text(answer[1])
    assert asked == []  # the answer came from the call's checkpoint, not from Sonnet again


async def test_a_follow_up_answer_slack_refuses_is_named_in_the_thread_by_a_tagged_notice(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        root = await a_finished_run(stack)
        before = len(bot_replies(stack, root))
        stack.slack.fail_next("chat.postMessage", error="is_archived")
        await mention(stack, "what about auth?", thread_ts=root)
        await settled(stack, lambda: len(bot_replies(stack, root)) > before)
        posted = bot_replies(stack, root)[before:]
    assert len(posted) == 1 and "Slack refused the follow-up's answer" in all_text(posted[0])
    assert "is_archived" in all_text(posted[0])
    assert posted[0].metadata is not None
    assert posted[0].metadata["event_payload"]["part"] == "undelivered.1"


def test_a_thread_request_is_ordered_to_10_microseconds_from_its_root() -> None:
    def asked(at: str, root: str = "1700000000.000000") -> Request:
        return Request("T", "C", "U", "q", root, at, _no_reply, arrived_ts=at)

    # Posted 90 µs apart in the same millisecond: still in order; capped after ~6 hours.
    orders = [thread_order(asked(f"1700000000.{us:06d}")) for us in (142983, 143191, 143278)]
    assert orders == sorted(orders) and len(set(orders)) == 3
    assert thread_order(asked("1700086400.000000")) == MAX_ORDER


async def _no_reply(**_: object) -> None:
    return None
