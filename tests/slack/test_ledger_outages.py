"""The ledger fails mid-run under the real app: PostgreSQL stopped, or SQLite's disk full.

The run waits for the database, as its engine's checkpoints and its ledger writes do, then
finishes for its user (strategy, examples, review and footer in the thread, no "⏳" left,
nothing posted twice): every call the Claude stand-in served is in the ledger, once, and the
run is closed with its reservation released.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.ledger import BudgetRefusal, Ledger
from tests.harness import Stack, running_stack
from tests.ledger.test_ledger_outages import fill, small_tmpfs
from tests.ledger.throwaway_pg import throwaway_postgres

QUESTION = "Design a REST API for a social network"
Outage = tuple[str, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


@asynccontextmanager
async def postgres_outage(tmp: Path) -> AsyncIterator[Outage]:
    async with throwaway_postgres() as pg:
        yield pg.url, pg.stop, pg.start


@asynccontextmanager
async def full_disk_outage(tmp: Path) -> AsyncIterator[Outage]:
    with small_tmpfs() as disk:
        filler = disk / "filler"

        async def fill_up() -> None:
            fill(disk)

        async def make_room() -> None:
            filler.unlink()

        yield f"sqlite:///{disk / 'ledger.db'}", fill_up, make_room


def shown(message: Any) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


async def ledger_request_ids(ledger: Ledger) -> list[str]:
    out = io.StringIO()
    await ledger.export.calls_csv(None, datetime.now(UTC) - timedelta(hours=1), out)
    return sorted(row["request_id"] for row in csv.DictReader(io.StringIO(out.getvalue())))


def assert_thread_complete(stack: Stack) -> None:
    top, replies = stack.thread()
    assert "⏳" not in shown(top) and "Done" in shown(top)
    assert any("Review by" in r.text for r in replies)
    texts = [shown(r) for r in replies]
    assert len(texts) == len(set(texts)), "a message was posted twice"


@pytest.mark.parametrize("outage", [postgres_outage, full_disk_outage])
async def test_the_ledger_failing_mid_run_loses_no_paid_call_and_the_run_finishes(
    tmp_path: Path, outage: Callable[[Path], Any]
) -> None:
    """The database goes away with calls in flight: the run waits for it (its steps cannot
    be checkpointed; a call that returned is kept, not made again) and finishes once the
    database is back, with every paid call in the ledger once."""
    async with (
        outage(tmp_path) as (url, fail, recover),
        running_stack(tmp_path, database_url=url) as stack,
    ):
        stack.claude.add_rule(role="example", delay_s=1.0)
        await stack.command(QUESTION)
        async with asyncio.timeout(30):
            while not any(r.role == "example" for r in stack.claude.messages()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await fail()
        await asyncio.sleep(2.5)  # the examples have returned meanwhile
        _, replies = stack.thread()
        assert not any("Review by" in r.text for r in replies)  # the run waits
        served_in_outage = sorted(r.request_id for r in stack.claude.messages())

        await recover()
        async with asyncio.timeout(90):
            await stack.services.runs.wait_idle()
        assert_thread_complete(stack)
        ledger = stack.services.ledger
        # No call that returned during the outage was made again: each example's prompt
        # (its component) was asked for once.
        examples = [json.dumps(r.body["messages"]) for r in stack.claude.messages()
                    if r.role == "example"]  # fmt: skip
        assert len(set(examples)) == len(examples) and served_in_outage
        served = sorted(r.request_id for r in stack.claude.messages())
        assert await ledger_request_ids(ledger) == served
        report = await ledger.reports.summary(
            "T0SANDBOX", since=datetime.now(UTC) - timedelta(hours=1), until=datetime.now(UTC)
        )
        assert (report.runs, report.calls) == (1, len(served))
        # The run is closed: its reservation no longer holds any of the budget.
        probe = await ledger.runs.reserve_run(
            team_id="T0SANDBOX", channel_id="C0GENERAL", user_id="U0PROBE", question="q",
            worst_case_usd=Decimal("0.01"), user_budget=None, workspace_budget=Decimal(0),
        )  # fmt: skip
        assert isinstance(probe, BudgetRefusal) and probe.reserved_usd == 0


async def test_a_follow_up_in_flight_while_the_disk_is_full_is_answered_once_there_is_room(
    tmp_path: Path,
) -> None:
    """A follow-up is a workflow like a run: with its call in flight when the disk fills,
    it waits (its step cannot be checkpointed), its answer kept, and answers once there is
    room, with its call in the ledger once and not made again."""
    from tests.slack.test_conversations import a_finished_run, bot_replies, mention, settled

    async with (
        full_disk_outage(tmp_path) as (url, fail, recover),
        running_stack(tmp_path, database_url=url) as stack,
    ):
        root = await a_finished_run(stack)
        before = len(bot_replies(stack, root))
        stack.claude.add_rule(role="answer", delay_s=1.0)
        await mention(stack, "what are we missing on auth?", thread_ts=root)
        async with asyncio.timeout(30):
            while not any(r.role == "answer" for r in stack.claude.messages()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await fail()
        await asyncio.sleep(2.5)  # the answer's call has returned meanwhile
        assert len(bot_replies(stack, root)) == before  # it waits for the disk

        await recover()
        await settled(stack, lambda: len(bot_replies(stack, root)) > before)
        ledger = stack.services.ledger
        served = sorted(r.request_id for r in stack.claude.messages())
        assert await ledger_request_ids(ledger) == served
        assert sum(r.role == "answer" for r in stack.claude.messages()) == 1


@pytest.mark.parametrize("button", ["orchestrate_retry", "orchestrate_feedback"])
async def test_a_click_while_the_ledger_cannot_write_is_answered_and_costs_nothing(
    tmp_path: Path, button: str
) -> None:
    async with (
        full_disk_outage(tmp_path) as (url, fail, _),
        running_stack(tmp_path, database_url=url) as stack,
    ):
        stack.claude.add_rule(role="example", fault="refusal", times=1)
        await stack.command(QUESTION)
        await stack.settle()
        _, replies = stack.thread()
        target = next(r for r in replies if button in json.dumps(r.blocks))
        calls = len(stack.claude.requests)
        await fail()  # a Retry's claim and a vote are writes
        choice = "positive" if button == "orchestrate_feedback" else None
        await stack.slack.click("C0GENERAL", target.ts, button, choice=choice)
        async with asyncio.timeout(10):
            while not stack.slack.ephemerals("U0ALICE"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        told = stack.slack.ephemerals("U0ALICE")
    assert "cannot reach its ledger" in told[0].text and len(told) == 1
    assert len(stack.claude.requests) == calls  # no call was made
