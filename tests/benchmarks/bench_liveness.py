"""What heartbeats and replay claims add to a run's ledger writes, on SQLite and PostgreSQL.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_liveness            # SQLite, and PostgreSQL
    .venv/bin/python -m tests.benchmarks.bench_liveness --runs 100

Every figure goes through the real ledger with durable commits. A run's writes are what the
bot makes for one `/orchestrate`: the reservation, the thread, 8 call records (1 plan, 6
examples, 1 review, each with its idempotency key) and the run's end. Added by replay and
liveness protection: one claim per command (its `trigger_id`), and per heartbeat tick (every
`ORCHESTRATE_HEARTBEAT_S`, whatever the load) a beat, a reap and the expiry of lapsed claims,
timed here with 2,000 finished runs and 2,000 claims in the tables. A tick's cost per run
depends on how many runs an instance makes per tick: shown for one run a minute (6 ticks a
run) and one run a second (0.1). PostgreSQL is measured when DATABASE_URL_TEST_POSTGRES is
set, in a throwaway schema. Medians; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.ledger import Ledger, Reservation, open_ledger
from tests.benchmarks.bench_ledger import SHAPE, call_record, machine

CALLS = [call_record(role, model, usage) for role, model, usage in SHAPE]
HEARTBEAT_S = 10.0


async def timed(step: Callable[[], Awaitable[object]], repeats: int) -> float:
    """Median milliseconds of `step` over `repeats` runs."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def one_run(ledger: Ledger) -> None:
    outcome = await ledger.writer.reserve_run(
        team_id="T-bench", channel_id="C1", user_id="U1", question="How do we ship?",
        worst_case_usd=Decimal("0.33"), user_budget=Decimal(1000),
        workspace_budget=Decimal(100000),
    )  # fmt: skip
    assert isinstance(outcome, Reservation)
    await ledger.writer.set_thread(outcome.run_id, "C1", f"{time.time():.6f}")
    for call in CALLS:
        await ledger.writer.record_call(outcome.run_id, call)
    await ledger.writer.finish_run(outcome.run_id, "finished", elapsed_s=20.0)


async def tick(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    await ledger.instances.beat(now=now)
    await ledger.instances.reap(
        ttl=timedelta(seconds=45), ownerless_before=now - timedelta(hours=1), now=now
    )
    await ledger.claims.expire(now=now)


async def bench(name: str, url: str, runs: int) -> str:
    async with open_ledger(url, spill_file=Path(tempfile.gettempdir()) / "bench.spill") as ledger:
        print(f"{name}: {runs} runs, then {runs} claims and {runs} ticks")
        run_ms = await timed(lambda: one_run(ledger), runs)
        claim_ms = await timed(lambda: ledger.claims.claim(f"command:{uuid.uuid4().hex}"), runs)
        await ledger.instances.beat()
        tick_ms = await timed(lambda: tick(ledger), runs)
    quiet = claim_ms + tick_ms * 60 / HEARTBEAT_S
    busy = claim_ms + tick_ms * 1 / HEARTBEAT_S
    return (
        f"| {name} | {run_ms:.1f} | {claim_ms:.2f} | {tick_ms:.2f}"
        f" | {quiet:.1f} ({quiet / run_ms:.0%}) | {busy:.2f} ({busy / run_ms:.1%}) |"
    )


async def bench_postgres(base: str, runs: int) -> str:
    import asyncpg  # type: ignore[import-untyped]

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(base)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"{base}{'&' if '?' in base else '?'}search_path={schema}"
        return await bench("PostgreSQL 15 (asyncpg, default durability)", url, runs)
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2_000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        rows.append(await bench("SQLite (WAL, synchronous=FULL)", url, args.runs))
    pg = os.environ.get("DATABASE_URL_TEST_POSTGRES")
    if pg:
        rows.append(await bench_postgres(pg, args.runs))
    else:
        print("PostgreSQL skipped: DATABASE_URL_TEST_POSTGRES is unset")
    print(f"\nMachine: {machine()}; medians of {args.runs}.\n")
    print(
        "| backend | a run's writes ms | claim ms | tick ms (beat + reap + expire)"
        " | added per run, 1 run/min | added per run, 1 run/s |\n|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
