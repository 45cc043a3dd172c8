"""chat.update is paced under Slack's Tier 3 limit: coalesced per message, spread at the
rate, awaited only at a run's end, flushed at shutdown. Over the wire against the Slack
sandbox; the scheduler's clock is a fake one the tests move, so nothing depends on how fast
a loaded machine runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from blocks.controls import STOP_ACTION
from bot.core.events import (
    Event,
    ExampleReady,
    ReviewReady,
    RunFinished,
    RunStarted,
    StrategyReady,
)
from bot.sandbox.slack.server import SlackSandbox
from bot.slack.poster import Poster
from bot.slack.render import ThreadRenderer
from bot.slack.thread import ThreadState, UpdateTop, advance
from bot.slack.updates import UpdateLimit, UpdateNotSent, UpdateScheduler
from tests.blocks.blocks_sample_data import HAIKU, OPUS, SONNET, cost, review, strategy
from tests.harness import running_stack

QUESTION = "Design a REST API for a social network"


class FakeClock:
    """A monotonic clock that moves only when the test says so; `sleep` waits for it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, wake))
        await wake

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its moment and letting it run."""
        target = self.now + seconds
        while True:
            await settle()
            due = [s for s in self._sleepers if s[0] <= target]
            if not due:
                break
            first = min(due, key=lambda s: s[0])
            self._sleepers.remove(first)
            self.now = max(self.now, first[0])
            if not first[1].done():  # a sleep cancelled meanwhile
                first[1].set_result(None)
        self.now = target


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


class Observed(AsyncWebClient):
    """The real client, noting on the fake clock when each chat.update leaves."""

    def __init__(self, clock: FakeClock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.sent: list[tuple[float, str, str]] = []  # (time, ts, text)

    async def chat_update(self, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sent.append((self.clock(), str(kwargs["ts"]), str(kwargs["text"])))
        return await super().chat_update(**kwargs)


@pytest.fixture
async def slack() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(slack: SlackSandbox, clock: FakeClock) -> Observed:
    return Observed(clock, token=slack.bot_token, base_url=slack.api_url)


def scheduler(client: Observed, clock: FakeClock, limit: UpdateLimit) -> UpdateScheduler:
    return UpdateScheduler(client, limit=limit, clock=clock, sleep=clock.sleep)


async def post(client: AsyncWebClient, count: int) -> list[str]:
    return [
        str((await client.chat_postMessage(channel="C0GENERAL", text=f"m{i}"))["ts"])
        for i in range(count)
    ]


def text(words: str) -> blocks.OutboundMessage:
    """A one-block message whose fallback text is `⚠ words`."""
    return blocks.error_message(words)


async def test_three_updates_to_one_message_while_the_bucket_is_empty_send_the_latest_once(
    slack: SlackSandbox, client: Observed, clock: FakeClock
) -> None:
    updates = scheduler(client, clock, UpdateLimit(limit=5, window_s=60.0))  # burst 1
    first, second = await post(client, 2)
    await updates.enqueue("C0GENERAL", first, text("first, v1"))  # takes the only token
    futures = [updates.enqueue("C0GENERAL", second, text(f"second, v{n}")) for n in (1, 2)]
    await settle()
    futures.append(updates.enqueue("C0GENERAL", second, text("second, v3")))
    assert updates.queued == 1 and len(client.sent) == 1  # waiting for a token
    await clock.advance(60.0)
    # Bounded: an edit dropped instead of coalesced would leave its future pending for ever.
    await asyncio.wait_for(asyncio.gather(*futures), 5)
    assert [(ts, words) for _, ts, words in client.sent] == [
        (first, "⚠ first, v1"),
        (second, "⚠ second, v3"),
    ]
    assert slack.messages("C0GENERAL")[1].text == "⚠ second, v3"
    assert updates.coalesced == 2


async def test_many_messages_are_updated_in_order_at_the_rate_never_over_the_limit(
    client: Observed, clock: FakeClock
) -> None:
    limit = UpdateLimit(limit=10, window_s=60.0)  # a burst of 2, then 0.127 a second
    updates = scheduler(client, clock, limit)
    messages = await post(client, 30)
    futures = [updates.enqueue("C0GENERAL", ts, text(f"new {ts}")) for ts in messages]
    await clock.advance(400.0)
    await asyncio.gather(*futures)
    times = [at for at, _, _ in client.sent]
    assert [ts for _, ts, _ in client.sent] == messages  # first queued, first sent
    assert times[:2] == [0.0, 0.0]  # the burst
    gaps = [b - a for a, b in itertools.pairwise(times[2:])]
    assert min(gaps) >= 1 / limit.rate - 1e-6  # then one per token, never faster
    for start in times:
        assert sum(start <= t <= start + limit.window_s for t in times) <= limit.limit
    # ... and not slower either: the 30th leaves when the bucket first allows it.
    assert times[-1] == pytest.approx(28 / limit.rate, abs=1e-6)


async def test_an_informational_update_waits_for_nothing_and_costs_nothing_under_load(
    client: Observed, clock: FakeClock
) -> None:
    updates = scheduler(client, clock, UpdateLimit(limit=50, window_s=60.0))  # burst 10
    one, two = await post(client, 2)
    assert updates.offer("C0GENERAL", one, text("draft 1")) is not None  # room to spare
    await settle()
    for n in range(5):  # required updates use the rest of the burst, down to the reserve
        updates.enqueue("C0GENERAL", two, text(f"required {n}"))
        await settle()
    assert updates.offer("C0GENERAL", one, text("draft 2")) is None
    pending = updates.enqueue("C0GENERAL", two, text("queued"))
    # Folded into an update already queued for its message, it is taken free of charge.
    assert updates.offer("C0GENERAL", two, text("reviewing")) is pending


async def test_the_run_end_waits_for_its_final_update_and_names_a_refusal_of_it(
    slack: SlackSandbox, client: Observed, clock: FakeClock
) -> None:
    poster = Poster(client, rate=1000.0)
    poster.updates = scheduler(client, clock, UpdateLimit(limit=5, window_s=60.0))
    top = await poster.post("C0GENERAL", blocks.error_message("⏳ planning"))
    render = ThreadRenderer(
        poster, run_id="r1", channel="C0GENERAL", thread_ts=top, asker_id="U0ALICE", question="q"
    )
    plan = strategy(components=1)
    await render(RunStarted("q", (OPUS, HAIKU, SONNET)))
    await poster.update("C0GENERAL", top, text("uses the only token"))
    # The strategy's edit is queued, and the run goes on without waiting for it.
    await render(StrategyReady(plan, OPUS))
    assert poster.updates.queued == 1
    await render(ExampleReady(0, plan.components[0], "an example", HAIKU))
    await render(ReviewReady(review(), SONNET))
    slack.fail_next("chat.update", error="cant_update_message", times=1)
    end = asyncio.create_task(render(RunFinished(cost(), 3.0)))
    await settle()
    assert not end.done()  # the final edit (which replaced the strategy's) is still queued
    await clock.advance(60.0)
    await end
    tops = [words for _, ts, words in client.sent if ts == top]
    assert len(tops) == 2 and "Done in" in tops[1]  # the strategy's edit was folded into it
    notices = [json.dumps(r.blocks) for r in slack.replies("C0GENERAL", top)]
    refused = "the update of the first message"
    assert any(refused in n and "cant_update_message" in n for n in notices)


async def test_close_sends_what_is_queued_and_names_what_it_cannot(
    client: Observed, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    updates = scheduler(client, clock, UpdateLimit(limit=5, window_s=60.0))
    messages = await post(client, 3)
    futures = [updates.enqueue("C0GENERAL", ts, text("final"), what=f"run {ts}") for ts in messages]
    await settle()
    with caplog.at_level(logging.ERROR, logger="bot.slack.updates"):
        grace = 1.5 / updates.limit.rate  # time for one more, not for the third
        closing = asyncio.create_task(updates.close(grace_s=grace))
        await clock.advance(1 / updates.limit.rate)
        await futures[1]
        await clock.advance(grace)
        await closing
    # Bounded: an edit close neither sent nor failed would leave its future pending for ever.
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 5)
    assert results[:2] == [None, None]
    assert isinstance(results[2], UpdateNotSent)
    assert f"run {messages[2]}" in caplog.text and "never updated" in caplog.text
    late = updates.enqueue("C0GENERAL", messages[0], text("after close"))
    with pytest.raises(UpdateNotSent):
        await late


async def test_shutdown_sends_the_last_edits_of_the_runs_it_suspends(tmp_path: Path) -> None:
    # A burst of 1, then 2.4 edits a second: three runs' last edits take about a second.
    pacing = {"slack_update_limit": 6, "slack_update_window_s": 2.0, "drain_grace_s": 2.0}
    async with running_stack(tmp_path, **pacing) as stack:
        stack.claude.add_rule(role="example", delay_s=60)  # the runs are busy at shutdown
        for channel in ("C0GENERAL", "C0RANDOM", "C0GENERAL"):
            await stack.command(QUESTION, channel_id=channel)
        async with asyncio.timeout(30):
            while sum(r.role == "example" for r in stack.claude.requests) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    # Leaving the stack drained the runs (suspending them: they resume at the next start) and
    # then sent their last edits: each first message says its run is paused.
    tops = stack.slack.messages("C0GENERAL") + stack.slack.messages("C0RANDOM")
    assert len(tops) == 3
    for top in tops:
        shown = top.text + json.dumps(top.blocks, ensure_ascii=False)
        assert "Paused while the bot restarts" in shown and "Interrupted" not in shown
    assert all(c.ok for c in stack.slack.calls_to("chat.update"))


async def test_runs_at_once_against_a_small_tier_3_make_no_429_and_all_end_in_their_final_state(
    tmp_path: Path,
) -> None:
    # Slack's Tier 3 scaled down (4 edits in any second), and the app told the same.
    slack = SlackSandbox(update_limit=4, update_window_s=1.0)
    pacing = {"slack_update_limit": 4, "slack_update_window_s": 1.0}
    channels = [f"C0PACE{i}" for i in range(6)]
    async with running_stack(tmp_path, slack=slack, **pacing) as stack:
        for channel in channels:
            members = {"U0ALICE", slack.workspace.bot_user_id}
            slack.workspace.add_channel(channel, channel.lower(), members=members)
        await asyncio.gather(*(stack.command(QUESTION, channel_id=c) for c in channels))
        async with asyncio.timeout(60):
            await stack.settle(runs=len(channels))
        updates = slack.calls_to("chat.update")
        tops = [slack.messages(c)[-1] for c in channels]
    assert [c.status for c in updates if not c.ok] == []  # never a 429 (nor anything else)
    times = sorted(c.at for c in updates)
    assert all(sum(s <= t < s + 1.0 for t in times) <= 4 for s in times)
    for top in tops:
        shown = top.text + json.dumps(top.blocks, ensure_ascii=False)
        assert "Done in" in shown and STOP_ACTION not in shown


def test_only_the_reviewing_edit_of_the_first_message_is_informational() -> None:
    plan = strategy(components=1)
    events: list[Event] = [
        RunStarted("q", (OPUS, HAIKU, SONNET)),
        StrategyReady(plan, OPUS),
        ExampleReady(0, plan.components[0], "an example", HAIKU),
        ReviewReady(review(), SONNET),
        RunFinished(cost(), 3.0),
    ]
    state, tops = ThreadState(asker_id="U0ALICE", question="q", run_id="r1"), []
    for event in events:
        state, effects = advance(state, event)
        tops += [e for e in effects if isinstance(e, UpdateTop)]
    # The strategy and the end must reach Slack; "reviewing" is what the loading status says.
    assert [(t.informational, "reviewing" in t.message.text) for t in tops] == [
        (False, False),
        (True, True),
        (False, False),
    ]
    assert STOP_ACTION in json.dumps(tops[0].message.blocks)  # Stop stays while it works


async def test_an_edit_replacing_a_queued_one_keeps_its_metadata_unless_it_brings_its_own(
    slack: SlackSandbox, client: Observed, clock: FakeClock
) -> None:
    updates = scheduler(client, clock, UpdateLimit(limit=5, window_s=60.0))  # burst 1
    busy, marked, remarked = await post(client, 3)
    await updates.enqueue("C0GENERAL", busy, text("takes the only token"))
    run = {"event_type": "orchestrate_run", "event_payload": {"run_id": "r1"}}
    newer = {"event_type": "orchestrate_run", "event_payload": {"run_id": "r2"}}
    updates.enqueue("C0GENERAL", marked, text("strategy"), metadata=run)
    updates.enqueue("C0GENERAL", remarked, text("strategy"), metadata=run)
    # A draft (no metadata) folded into the marked edit; a marked edit into the other.
    first = updates.offer("C0GENERAL", marked, text("a draft"))
    second = updates.enqueue("C0GENERAL", remarked, text("final"), metadata=newer)
    assert first is not None
    await clock.advance(60.0)
    await asyncio.gather(first, second)
    shown = {m.ts: m for m in slack.messages("C0GENERAL")}
    assert shown[marked].text == "⚠ a draft" and shown[marked].metadata == run
    assert shown[remarked].text == "⚠ final" and shown[remarked].metadata == newer


async def test_a_bug_in_the_pacing_fails_the_queued_edits_instead_of_leaving_them_waiting(
    client: Observed, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_sleep(seconds: float) -> None:
        raise RuntimeError("a bug in the pacing")

    limit = UpdateLimit(limit=5, window_s=60.0)  # burst 1
    updates = UpdateScheduler(client, limit=limit, clock=clock, sleep=broken_sleep)
    first, second = await post(client, 2)
    await updates.enqueue("C0GENERAL", first, text("takes the only token"))
    with caplog.at_level(logging.ERROR, logger="bot.slack.updates"):
        waiting = updates.enqueue("C0GENERAL", second, text("final"), what="run r2's end")
        with pytest.raises(UpdateNotSent):
            await asyncio.wait_for(waiting, 5)
    assert "run r2's end" in caplog.text and "pacing failed" in caplog.text


def test_a_limit_leaving_no_rate_after_its_burst_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        UpdateLimit(limit=1, window_s=60.0)
