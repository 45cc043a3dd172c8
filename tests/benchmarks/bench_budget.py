"""Budget benchmark: what checking budgets adds to a run, and overshoot under concurrency.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_budget            # SQLite, and PostgreSQL
    .venv/bin/python -m tests.benchmarks.bench_budget --runs 300 --history 2000

PostgreSQL is measured when DATABASE_URL_TEST_POSTGRES is set (`eval "$(bash
.ci/postgres.sh)"`), in a throwaway schema.

1. **Added latency per run.** The ledger traffic of one run (reserve, 8 call records, finish)
   timed through the real ledger with no budget, then with a per-person daily and a
   workspace monthly budget in force: the reservation then also reads the p95 of recent
   runs of the same models, and the pipeline's gate asks `budget_stop` before each of the
   8 calls. The ledger holds `--history` finished runs of this team first. Medians of
   `--runs` runs each, alternating the two modes so load drifts hit both alike.
2. **Overshoot.** 20 runs started at once, each making 8 calls in turn (the check before
   each, a few milliseconds of "model time" per call, a typical run's per-call costs: about
   $0.054 a run) against a workspace budget of $0.10, with a history of cheap runs so that
   every run is admitted and only the stop check bounds spend; prints what was spent, the
   most calls in flight at once, and the bound (budget + calls in flight × largest call).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.core.pricing import PriceTable
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import Ledger, Limits, Reservation, open_ledger

TEAM = "T-bench"
MODELS = "claude-opus-5-5,claude-haiku-5-5,claude-sonnet-5-5"
PRICES = PriceTable.load()
SHAPE: tuple[tuple[str, str, TokenUsage], ...] = (
    ("plan", "claude-opus-5-5", TokenUsage(input_tokens=900, output_tokens=1_400)),
    *(
        ("example", "claude-haiku-5-5", TokenUsage(input_tokens=1_300, output_tokens=1_000))
        for _ in range(6)
    ),
    ("review", "claude-sonnet-5-5", TokenUsage(input_tokens=6_500, output_tokens=550)),
)
NO_BUDGET = Limits(user_daily=None, workspace_monthly=None)
BUDGETS = Limits(user_daily=Decimal(1000), workspace_monthly=Decimal(1_000_000))


def record(role: str, model: str, usage: TokenUsage) -> CallRecord:
    return CallRecord(
        role=role,  # type: ignore[arg-type]
        model=model,
        usage=usage,
        cost_usd=PRICES.cost(model, usage),
        latency_s=1.0,
        outcome="ok",
    )


CALLS = [record(*step) for step in SHAPE]


async def one_run(ledger: Ledger, limits: Limits, *, user: str, at: datetime | None) -> float:
    """The ledger side of one run; returns its seconds."""
    started = time.perf_counter()
    admitted = await ledger.runs.reserve_run(
        team_id=TEAM, channel_id="C1", user_id=user, question="q",
        worst_case_usd=Decimal("0.33"), user_budget=limits.user_daily,
        workspace_budget=limits.workspace_monthly, models=MODELS, now=at,
    )  # fmt: skip
    assert isinstance(admitted, Reservation)
    for call in CALLS:
        if limits.any:
            assert await ledger.runs.budget_stop(admitted.run_id, limits) is None
        await ledger.runs.record_call(admitted.run_id, call, now=at)
    await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=1.0, now=at)
    return time.perf_counter() - started


async def latency(url: str, *, runs: int, history: int) -> tuple[float, float]:
    async with open_ledger(url) as ledger:
        earlier = datetime.now(UTC) - timedelta(days=2)
        for n in range(history):
            await one_run(ledger, NO_BUDGET, user=f"U{n % 200}", at=earlier)
        plain: list[float] = []
        budgeted: list[float] = []
        for n in range(runs):
            plain.append(await one_run(ledger, NO_BUDGET, user=f"U{n % 50}", at=None))
            budgeted.append(await one_run(ledger, BUDGETS, user=f"U{n % 50}", at=None))
    return statistics.median(plain) * 1000, statistics.median(budgeted) * 1000


async def overshoot(url: str) -> tuple[Decimal, Decimal, int, int]:
    budget = Decimal("0.10")
    limits = Limits(user_daily=None, workspace_monthly=budget)
    in_flight = [0, 0]
    team = f"T-over-{uuid.uuid4().hex[:6]}"

    async def run(n: int) -> str:
        admitted = await ledger.runs.reserve_run(
            team_id=team, channel_id="C1", user_id=f"U{n}", question="q",
            worst_case_usd=Decimal("0.33"), user_budget=None, workspace_budget=budget,
            models=MODELS,
        )  # fmt: skip
        if not isinstance(admitted, Reservation):
            return "refused"
        for call in CALLS:
            if await ledger.runs.budget_stop(admitted.run_id, limits) is not None:
                await ledger.runs.finish_run(admitted.run_id, "failed", elapsed_s=0.1)
                return "stopped"
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
            await asyncio.sleep(random.uniform(0.001, 0.01))
            await ledger.runs.record_call(admitted.run_id, call)
            in_flight[0] -= 1
        await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=0.1)
        return "finished"

    async with open_ledger(url) as ledger:
        # Five cheap earlier runs (last month, one Haiku call each): every run reserves
        # their p95, far below what it will spend, so all 20 are admitted and only the
        # check before each call keeps spend near the budget (the worst case for overshoot).
        for _ in range(5):
            await one_run_for(ledger, team)
        outcomes = await asyncio.gather(*(run(n) for n in range(20)))
        spent = await ledger.budgets.workspace_month_spent(team)
    largest = max(c.cost_usd or Decimal(0) for c in CALLS)
    bound = budget + in_flight[1] * largest
    finished = outcomes.count("finished")
    return spent, bound, in_flight[1], finished


async def one_run_for(ledger: Ledger, team: str) -> None:
    at = datetime.now(UTC) - timedelta(days=40)
    admitted = await ledger.runs.reserve_run(
        team_id=team, channel_id="C1", user_id="U0", question="q",
        worst_case_usd=Decimal("0.33"), user_budget=None, workspace_budget=None,
        models=MODELS, now=at,
    )  # fmt: skip
    assert isinstance(admitted, Reservation)
    await ledger.runs.record_call(admitted.run_id, CALLS[1], now=at)  # one cheap call
    await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=1.0, now=at)


async def postgres_schema() -> tuple[str, str] | None:
    base = os.environ.get("DATABASE_URL_TEST_POSTGRES")
    if not base:
        return None
    import asyncpg  # type: ignore[import-untyped]

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(base)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    return base, schema


async def drop_schema(base: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base)
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()


async def main(runs: int, history: int) -> None:
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cores; {runs} runs per mode, {history} runs of history\n")  # fmt: skip
    print("| backend | run's ledger work, no budget, ms | with budgets, ms | added per run, ms |")
    print("|---|---|---|---|")
    targets: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}"))
        pg = await postgres_schema()
        if pg is not None:
            base, schema = pg
            targets.append(("PostgreSQL", f"{base}?search_path={schema}"))
        try:
            for name, url in targets:
                plain, budgeted = await latency(url, runs=runs, history=history)
                print(f"| {name} | {plain:.2f} | {budgeted:.2f} | {budgeted - plain:.2f} |")
            print("\n| backend | budget | spent by 20 concurrent runs | most calls in flight "
                  "| bound (budget + in flight × largest call) | runs finished |")  # fmt: skip
            print("|---|---|---|---|---|---|")
            for name, url in targets:
                spent, bound, most, finished = await overshoot(url)
                print(f"| {name} | $0.1000 | ${spent:.4f} | {most} | ${bound:.4f} | {finished} |")
        finally:
            if pg is not None:
                await drop_schema(*pg)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--history", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.history))
