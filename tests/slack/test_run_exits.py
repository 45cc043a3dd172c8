"""Every way a run ends closes its ledger row and releases its reservation.

The pipeline here is a stand-in (a bug, or a cancellation the pipeline never reports, cannot
be provoked over a wire); the ledger, the poster and Slack are real. Each test checks that the
run's task ends without an exception for nobody to retrieve, and that the budget no longer
counts the run's reservation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.core.events import Event
from bot.ledger import BudgetRefusal
from bot.slack import workflows
from bot.slack.requests import RunRequest, run_id_for
from bot.slack.runs import Runs
from tests.harness import Stack, running_stack

Emit = Callable[[Event], Awaitable[None]]
REQUEST = RunRequest(team_id="T0SANDBOX", channel_id="C0GENERAL", user_id="U0ALICE", question="q")


class BuggyPipeline:
    def worst_case_usd(self, question: str, *, thread: str = "") -> Decimal:
        return Decimal("0.40")

    async def run(
        self,
        question: str,
        *,
        emit: Emit,
        thread: str | None = None,
        budget: Any = None,
        stop: object = None,
        **_: Any,
    ) -> None:
        raise RuntimeError("a bug")


class SilentPipeline(BuggyPipeline):
    """Waits forever and, when cancelled, says nothing (as a pipeline bug might)."""

    async def run(
        self,
        question: str,
        *,
        emit: Emit,
        thread: str | None = None,
        budget: Any = None,
        stop: object = None,
        **_: Any,
    ) -> None:
        await asyncio.Event().wait()


class QuickPipeline(BuggyPipeline):
    async def run(
        self,
        question: str,
        *,
        emit: Emit,
        thread: str | None = None,
        budget: Any = None,
        stop: object = None,
        **_: Any,
    ) -> None:
        return None


def runs_with(stack: Stack, pipeline: Any) -> Runs:
    """A second run registry on the stack's engine, its workflows run on it."""
    runs = Runs(
        pipeline=pipeline,
        ledger=stack.services.ledger.writer,
        governance=stack.services.governance,
        poster=stack.services.poster,
        settings=stack.settings,
        engine=stack.services.runs.engine,
    )
    workflows.register(runs)
    return runs


async def held(stack: Stack) -> Decimal:
    probe = await stack.services.ledger.runs.reserve_run(
        team_id="T0SANDBOX", channel_id="C0GENERAL", user_id="U0PROBE", question="q",
        worst_case_usd=Decimal("0.01"), user_budget=None, workspace_budget=Decimal(0),
    )  # fmt: skip
    assert isinstance(probe, BudgetRefusal)
    return probe.reserved_usd


async def no_reply(**_: Any) -> None:
    raise AssertionError("the run should have started")


async def test_a_bug_in_the_pipeline_closes_the_run_and_says_so(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        runs = runs_with(stack, BuggyPipeline())
        task = await runs.start(REQUEST, no_reply)
        assert task is not None
        await asyncio.wait_for(task, 10)

        assert task.exception() is None
        assert await held(stack) == 0
        _, replies = stack.thread()
        assert replies and "internal error" in replies[-1].text


async def test_a_run_a_shutdown_cannot_stop_is_left_open_for_the_restart(
    tmp_path: Path,
) -> None:
    """A pipeline that ignores the suspension (as a bug might) is cancelled after the
    suspension's grace: its workflow stays pending and its run open, holding its budget,
    for the next start to resume; nothing is rewritten as interrupted."""
    async with running_stack(tmp_path) as stack:
        runs = runs_with(stack, SilentPipeline())
        await runs.start(REQUEST, no_reply, delivery="command:silent")
        await asyncio.sleep(0.3)
        assert await held(stack) == Decimal("0.40")

        await runs.drain(0.0, suspend_s=0.2)

        run_id = run_id_for("command:silent")
        assert await held(stack) == Decimal("0.40")
        row = await stack.services.ledger.runs.get_run(run_id)
        assert row is not None and row.status == "running"
        assert await runs.engine.status(run_id) == "PENDING"


async def test_a_failing_after_run_check_does_not_leave_a_task_exception(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        runs = runs_with(stack, QuickPipeline())

        async def broken(team_id: str) -> None:
            raise ConnectionError("the database went away")

        runs.on_finished = broken
        task = await runs.start(REQUEST, no_reply)
        assert task is not None
        await asyncio.wait_for(task, 10)
        assert task.exception() is None
