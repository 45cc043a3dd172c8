"""The overshoot bound, on both backends: runs that check their budget before every call can
pass it only by the calls in flight when it is reached. Twenty concurrent runs, each making
calls of a known cost with the check before each one, against a budget a few runs can pay for.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import Ledger, Limits, Reservation

RUNS = 20
CALLS_PER_RUN = 8
CALL_COST = Decimal("0.004")
BUDGET = Decimal("0.10")  # 25 calls: about three runs' worth
MODELS = "claude-opus-5-5,claude-haiku-5-5,claude-sonnet-5-5"


def call() -> CallRecord:
    return CallRecord(
        role="example",
        model="claude-haiku-5-5",
        usage=TokenUsage(input_tokens=10, output_tokens=10),
        cost_usd=CALL_COST,
        latency_s=0.01,
        outcome="ok",
    )


async def history(ledger: Ledger) -> None:
    """Five runs of the same models last month: new runs reserve their p95 (one call's
    cost), not their worst case, and the month's budget starts untouched."""
    yesterday = datetime.now(UTC) - timedelta(days=40)
    for _ in range(5):
        admitted = await ledger.runs.reserve_run(
            team_id="T1", channel_id="C1", user_id="U0", question="q",
            worst_case_usd=Decimal("0.33"), user_budget=Decimal(100), workspace_budget=None,
            models=MODELS, now=yesterday,
        )  # fmt: skip
        assert isinstance(admitted, Reservation)
        await ledger.runs.record_call(admitted.run_id, call(), now=yesterday)
        await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=1.0, now=yesterday)


async def one_run(ledger: Ledger, n: int, limits: Limits, in_flight: list[int]) -> str:
    admitted = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id=f"U{n}", question="q",
        worst_case_usd=Decimal("0.33"), user_budget=None,
        workspace_budget=limits.workspace_monthly, models=MODELS,
    )  # fmt: skip
    if not isinstance(admitted, Reservation):
        return "refused"
    outcome = "finished"
    for _ in range(CALLS_PER_RUN):
        if await ledger.runs.budget_stop(admitted.run_id, limits) is not None:
            outcome = "stopped"
            break
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await asyncio.sleep(random.uniform(0, 0.005))  # the model answering
        await ledger.runs.record_call(admitted.run_id, call())
        in_flight[0] -= 1
    status = "finished" if outcome == "finished" else "failed"
    await ledger.runs.finish_run(admitted.run_id, status, elapsed_s=0.1)
    return outcome


async def test_twenty_concurrent_runs_pass_a_budget_only_by_the_calls_in_flight(
    ledger: Ledger,
) -> None:
    await history(ledger)
    limits = Limits(user_daily=None, workspace_monthly=BUDGET)
    in_flight = [0, 0]  # now, most at once
    outcomes = await asyncio.gather(*(one_run(ledger, n, limits, in_flight) for n in range(RUNS)))
    spent = await ledger.budgets.workspace_month_spent("T1")
    assert outcomes.count("stopped") >= 1
    assert spent >= BUDGET - CALL_COST  # the budget was used, not left idle by reservations
    # The bound: at most one call per run in flight when the budget was reached.
    assert spent <= BUDGET + in_flight[1] * CALL_COST
    assert in_flight[1] <= RUNS
