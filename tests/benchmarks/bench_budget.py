"""Budget benchmark: what checking budgets adds to each model call, and the overshoot of
twenty concurrent runs, on SQLite, on PostgreSQL and on two instances sharing PostgreSQL.

Run from the repository root (not collected by pytest):

    eval "$(bash .ci/postgres.sh)"
    .venv/bin/python -m tests.benchmarks.bench_budget            # --runs, --history, --repeats

PostgreSQL is measured when DATABASE_URL_TEST_POSTGRES is set, in throwaway schemas.

The script measures whichever budget check the code it runs against has, so the same file
gives the "before" and "after" figures: the per-call hold (`reserve_call` before each call,
settled by the call's record) where the ledger has it, else the stop check of earlier builds
(`budget_stop` before each call: stop once spend plus other runs' reservations reach the
budget). To measure an earlier build, export it and run this file against it, e.g.
`git archive <rev> | tar -x -C /tmp/before && cp tests/benchmarks/bench_budget.py
/tmp/before/tests/benchmarks/ && PYTHONPATH=/tmp/before .venv/bin/python -m
tests.benchmarks.bench_budget`.

1. **Added latency per call.** The ledger side of a run's 8 calls (the check, then the
   durable record) timed through the real ledger with no budget, then with a per-person
   daily and a workspace monthly budget in force, over `--history` earlier runs. Medians of
   `--runs` runs per mode, alternating the modes so load drifts hit both alike; printed per
   call.
2. **Overshoot.** 20 runs started at once, each making a typical run's 8 calls in turn (a
   plan, six examples, a review: about $0.054 a run at list prices), the check before each
   call and a few milliseconds of "model time", against each workspace budget of `--budgets`
   ($0.10, little more than one plan's worst case, and $0.50), with a history of cheap runs
   so that every run is admitted and only the per-call check bounds spend. Each call's
   worst case is what the app holds for it: its prompt's bound and its whole `max_tokens`
   at the default efforts, at list prices. `--repeats` rounds per target; prints the median
   and the largest overshoot, and the bound each design promises.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.core.claude import max_tokens_for
from bot.core.pricing import PriceTable
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import Ledger, Limits, Reservation, open_ledger
from bot.settings import Settings

TEAM = "T-bench"
MODELS = "claude-opus-5-5,claude-haiku-5-5,claude-sonnet-5-5"
PRICES = PriceTable.load()
SETTINGS = Settings()
SHAPE: tuple[tuple[str, str, TokenUsage], ...] = (
    ("plan", "claude-opus-5-5", TokenUsage(input_tokens=900, output_tokens=1_400)),
    *(
        ("example", "claude-haiku-5-5", TokenUsage(input_tokens=1_300, output_tokens=1_000))
        for _ in range(6)
    ),
    ("review", "claude-sonnet-5-5", TokenUsage(input_tokens=6_500, output_tokens=550)),
)
EFFORT = {
    "plan": SETTINGS.strategy_effort,
    "example": SETTINGS.examples_effort,
    "review": SETTINGS.review_effort,
}
NO_BUDGET = Limits(user_daily=None, workspace_monthly=None)
BUDGETS = Limits(user_daily=Decimal(1000), workspace_monthly=Decimal(1_000_000))
HOLDS = "per-call hold"
STOPS = "stop check"


def record(role: str, model: str, usage: TokenUsage) -> CallRecord:
    return CallRecord(
        role=role,  # type: ignore[arg-type]
        model=model,
        usage=usage,
        cost_usd=PRICES.cost(model, usage),
        latency_s=1.0,
        outcome="ok",
    )


def worst(role: str, model: str, usage: TokenUsage) -> Decimal:
    """What the app holds for the call: twice its prompt (the bound errs high) and its whole
    `max_tokens` at the default effort."""
    out = max_tokens_for(role, EFFORT[role])  # type: ignore[arg-type]
    cost = PRICES.cost(model, TokenUsage(input_tokens=2 * usage.input_tokens, output_tokens=out))
    assert cost is not None
    return cost


CALLS = [(record(*step), worst(*step)) for step in SHAPE]
LARGEST_WORST = max(w for _, w in CALLS)
LARGEST_CALL = max(c.cost_usd or Decimal(0) for c, _ in CALLS)


def design(ledger: Ledger) -> str:
    return HOLDS if hasattr(ledger.runs, "reserve_call") else STOPS


Check = Callable[[str, Decimal], Awaitable[tuple[bool, str | None]]]


def checker(ledger: Ledger, limits: Limits) -> Check:
    """Before a call: (may it start, the key its record settles)."""

    async def hold(run_id: str, worst_case: Decimal) -> tuple[bool, str | None]:
        if not limits.any:
            return True, None
        held: Any = await ledger.runs.reserve_call(  # type: ignore[attr-defined]
            run_id, worst_case_usd=worst_case, limits=limits
        )
        key = getattr(held, "key", None)
        return hasattr(held, "key"), key

    async def stop(run_id: str, worst_case: Decimal) -> tuple[bool, str | None]:
        if not limits.any:
            return True, None
        stopped = await ledger.runs.budget_stop(run_id, limits)  # type: ignore[attr-defined]
        return stopped is None, None

    return hold if design(ledger) == HOLDS else stop


async def reserve(ledger: Ledger, limits: Limits, *, user: str, team: str = TEAM,
                  at: datetime | None = None) -> Reservation | None:  # fmt: skip
    admitted = await ledger.runs.reserve_run(
        team_id=team, channel_id="C1", user_id=user, question="q",
        worst_case_usd=Decimal("0.33"), user_budget=limits.user_daily,
        workspace_budget=limits.workspace_monthly, models=MODELS, now=at,
    )  # fmt: skip
    return admitted if isinstance(admitted, Reservation) else None


async def one_run(ledger: Ledger, limits: Limits, *, user: str, at: datetime | None) -> float:
    """The ledger side of one run's calls; returns its seconds (admission excluded)."""
    admitted = await reserve(ledger, limits, user=user, at=at)
    assert admitted is not None
    check = checker(ledger, limits)
    started = time.perf_counter()
    for call, worst_case in CALLS:
        go, key = await check(admitted.run_id, worst_case)
        assert go
        await ledger.runs.record_call(admitted.run_id, replace_key(call, key), key=key, now=at)
    elapsed = time.perf_counter() - started
    await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=1.0, now=at)
    return elapsed


def replace_key(call: CallRecord, key: str | None) -> CallRecord:
    return replace(call, key=key) if hasattr(call, "key") else call


async def latency(url: str, *, runs: int, history: int) -> tuple[float, float, str]:
    async with open_ledger(url) as ledger:
        earlier = datetime.now(UTC) - timedelta(days=2)
        for n in range(history):
            await one_run(ledger, NO_BUDGET, user=f"U{n % 200}", at=earlier)
        plain: list[float] = []
        budgeted: list[float] = []
        for n in range(runs):
            plain.append(await one_run(ledger, NO_BUDGET, user=f"U{n % 50}", at=None))
            budgeted.append(await one_run(ledger, BUDGETS, user=f"U{n % 50}", at=None))
        kind = design(ledger)
    per_call = 1000 / len(CALLS)
    return statistics.median(plain) * per_call, statistics.median(budgeted) * per_call, kind


async def overshoot(ledgers: list[Ledger], budget: Decimal) -> tuple[Decimal, int, int]:
    """One round: 20 runs at once (spread over `ledgers`); what they spent, the most calls
    in flight at once, and how many runs finished."""
    limits = Limits(user_daily=None, workspace_monthly=budget)
    team = f"T-over-{uuid.uuid4().hex[:6]}"
    in_flight = [0, 0]
    earlier = datetime.now(UTC) - timedelta(days=40)
    for _ in range(5):  # five cheap runs last month: the 20 reserve their p95 and all start
        admitted = await reserve(ledgers[0], NO_BUDGET, user="U0", team=team, at=earlier)
        assert admitted is not None
        await ledgers[0].runs.record_call(admitted.run_id, CALLS[1][0], now=earlier)
        await ledgers[0].runs.finish_run(admitted.run_id, "finished", elapsed_s=1.0, now=earlier)

    async def run(n: int) -> str:
        ledger = ledgers[n % len(ledgers)]
        admitted = await reserve(ledger, limits, user=f"U{n}", team=team)
        if admitted is None:
            return "refused"
        check = checker(ledger, limits)
        for call, worst_case in CALLS:
            go, key = await check(admitted.run_id, worst_case)
            if not go:
                await ledger.runs.finish_run(admitted.run_id, "failed", elapsed_s=0.1)
                return "stopped"
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
            await asyncio.sleep(random.uniform(0.001, 0.01))  # the model answering
            await ledger.runs.record_call(admitted.run_id, replace_key(call, key), key=key)
            in_flight[0] -= 1
        await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=0.1)
        return "finished"

    outcomes = await asyncio.gather(*(run(n) for n in range(20)))
    spent = await ledgers[0].budgets.workspace_month_spent(team)
    return spent, in_flight[1], outcomes.count("finished")


async def overshoot_rounds(
    urls: list[str], repeats: int, budget: Decimal
) -> list[tuple[Decimal, int, int]]:
    ledgers = [open_ledger(url) for url in urls]
    for ledger in ledgers:
        await ledger.open()
    try:
        return [await overshoot(ledgers, budget) for _ in range(repeats)]
    finally:
        for ledger in ledgers:
            await ledger.close()


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


async def main(runs: int, history: int, repeats: int, budgets: list[Decimal]) -> None:
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cores; {runs} runs per mode, {history} runs of history, "
          f"{repeats} overshoot rounds per target\n")  # fmt: skip
    schemas: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        latency_targets = [("SQLite", f"sqlite:///{Path(tmp) / 'latency.db'}")]
        over_targets = [("SQLite", [f"sqlite:///{Path(tmp) / 'over.db'}"])]
        for name in ("latency", "over"):
            pg = await postgres_schema()
            if pg is not None:
                schemas.append(pg)
                url = f"{pg[0]}?search_path={pg[1]}"
                if name == "latency":
                    latency_targets.append(("PostgreSQL", url))
                else:
                    over_targets.append(("PostgreSQL, one instance", [url]))
                    over_targets.append(("PostgreSQL, two instances", [url, url]))
        try:
            print("| backend | check | ledger work per call, no budget, ms "
                  "| with budgets, ms | added per call, ms |")  # fmt: skip
            print("|---|---|---|---|---|")
            for name, url in latency_targets:
                plain, budgeted, kind = await latency(url, runs=runs, history=history)
                print(f"| {name} | {kind} | {plain:.2f} | {budgeted:.2f} "
                      f"| {budgeted - plain:.2f} |")  # fmt: skip
            print(f"\nLargest call ${LARGEST_CALL:.4f}, largest worst case "
                  f"${LARGEST_WORST:.4f}.\n")  # fmt: skip
            print("| target | budget | check | spent, median (max) | overshoot, median (max) "
                  "| most calls in flight | runs finished | promised bound |")  # fmt: skip
            print("|---|---|---|---|---|---|---|---|")
            for (name, urls), budget in itertools.product(over_targets, budgets):
                rounds = await overshoot_rounds(urls, repeats, budget)
                spent = sorted(r[0] for r in rounds)
                most = max(r[1] for r in rounds)
                finished = max(r[2] for r in rounds)
                kind = HOLDS if await has_holds(urls[0]) else STOPS
                bound = (
                    f"budget + one call's worst case = ${budget + LARGEST_WORST:.4f}"
                    if kind == HOLDS
                    else f"budget + calls in flight × largest call = "
                    f"${budget + most * LARGEST_CALL:.4f}"
                )
                med = statistics.median(spent)
                print(f"| {name} | ${budget:.2f} | {kind} | ${med:.4f} (${spent[-1]:.4f}) "
                      f"| ${med - budget:.4f} (${spent[-1] - budget:.4f}) | {most} "
                      f"| {finished} | {bound} |")  # fmt: skip
        finally:
            for pg in schemas:
                await drop_schema(*pg)


async def has_holds(url: str) -> bool:
    async with open_ledger(url) as ledger:
        return design(ledger) == HOLDS


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--history", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budgets", default="0.10,0.50", help="workspace budgets, USD")
    args = parser.parse_args()
    budgets = [Decimal(b) for b in args.budgets.split(",")]
    asyncio.run(main(args.runs, args.history, args.repeats, budgets))
