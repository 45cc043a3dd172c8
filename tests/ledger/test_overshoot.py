"""The overshoot bound, on both backends: calls that hold their worst case before they start
pass a budget jointly by at most one call's worst case. Twenty concurrent runs, each making
calls whose real cost is below their worst case, against a budget a few runs can pay for, on
one ledger and (the instances of a deployment) on two ledgers sharing one database.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import BudgetStop, Ledger, Limits, Reservation, open_ledger

RUNS = 20
CALLS_PER_RUN = 5
WORST = Decimal("0.008")  # what each call holds
BUDGET = Decimal("0.10")  # about 13 calls' worst case, of the 100 the runs would make
MODELS = "claude-opus-5-5,claude-haiku-5-5,claude-sonnet-5-5"


def call(cost: Decimal, key: str | None) -> CallRecord:
    return CallRecord(
        role="example",
        model="claude-haiku-5-5",
        usage=TokenUsage(input_tokens=10, output_tokens=10),
        cost_usd=cost,
        latency_s=0.01,
        outcome="ok",
        key=key,
    )


async def history(ledger: Ledger) -> None:
    """Five cheap runs of the same models last month: new runs reserve their p95 (one cheap
    call), so all twenty are admitted and only the holds before each call bound spend."""
    earlier = datetime.now(UTC) - timedelta(days=40)
    for _ in range(5):
        admitted = await ledger.runs.reserve_run(
            team_id="T1", channel_id="C1", user_id="U0", question="q",
            worst_case_usd=Decimal("0.33"), user_budget=Decimal(100), workspace_budget=None,
            models=MODELS, now=earlier,
        )  # fmt: skip
        assert isinstance(admitted, Reservation)
        await ledger.runs.record_call(admitted.run_id, call(Decimal("0.001"), None), now=earlier)
        await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=1.0, now=earlier)


async def one_run(ledger: Ledger, n: int, limits: Limits) -> str:
    admitted = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id=f"U{n}", question="q",
        worst_case_usd=Decimal("0.33"), user_budget=None,
        workspace_budget=limits.workspace_monthly, models=MODELS,
    )  # fmt: skip
    if not isinstance(admitted, Reservation):
        return "refused"
    outcome = "finished"
    for _ in range(CALLS_PER_RUN):
        hold = await ledger.runs.reserve_call(admitted.run_id, worst_case_usd=WORST, limits=limits)
        if isinstance(hold, BudgetStop):
            outcome = "stopped"
            break
        await asyncio.sleep(random.uniform(0, 0.005))  # the model answering
        real = WORST * Decimal(random.randint(25, 100)) / 100
        await ledger.runs.record_call(admitted.run_id, call(real, hold.key))
    status = "finished" if outcome == "finished" else "failed"
    await ledger.runs.finish_run(admitted.run_id, status, elapsed_s=0.1)
    return outcome


async def test_twenty_concurrent_runs_pass_a_budget_by_at_most_one_calls_worst_case(
    ledger: Ledger,
) -> None:
    await history(ledger)
    limits = Limits(user_daily=None, workspace_monthly=BUDGET)
    outcomes = await asyncio.gather(*(one_run(ledger, n, limits) for n in range(RUNS)))
    spent = await ledger.budgets.workspace_month_spent("T1")
    assert outcomes.count("stopped") >= 1 and spent > 0
    assert spent <= BUDGET + WORST


async def test_two_instances_on_one_database_hold_the_same_bound(ledger_url: str) -> None:
    async with open_ledger(ledger_url) as first, open_ledger(ledger_url) as second:
        await history(first)
        limits = Limits(user_daily=None, workspace_monthly=BUDGET)
        outcomes = await asyncio.gather(
            *(one_run(first if n % 2 else second, n, limits) for n in range(RUNS))
        )
        spent = await first.budgets.workspace_month_spent("T1")
    assert outcomes.count("stopped") >= 1
    assert 0 < spent <= BUDGET + WORST
