"""Ledger benchmark: time to record one call, and the admin summary over 1,000,000 calls.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_ledger            # SQLite, and PostgreSQL
    .venv/bin/python -m tests.benchmarks.bench_ledger --calls 200000 --records 500

PostgreSQL is measured when DATABASE_URL_TEST_POSTGRES is set (`eval "$(bash
.ci/postgres.sh)"`), in a throwaway schema. Recording goes through the real `record_call`
(a durable commit each). The million calls are bulk-loaded straight into the tables the
migrations made (executemany on SQLite, COPY on PostgreSQL), shaped as the ledger writes
them: runs of 8 calls (1 plan, 6 examples, 1 review) for one team, 200 users, 40 channels,
over 30 days, so a 30-day summary aggregates all of them. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.core.pricing import PriceTable
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import Ledger, open_ledger
from bot.ledger.migrations import POSTGRES_DAY, SQLITE_DAY, call_days_backfill
from bot.ledger.types import to_nanos

TEAM = "T-bench"
NOW = datetime.now(UTC)
PRICES = PriceTable.load()
# (role, model, usage) of one run; every run in the load repeats this shape.
SHAPE: tuple[tuple[str, str, TokenUsage], ...] = (
    ("plan", "claude-opus-5-5", TokenUsage(input_tokens=900, output_tokens=1_400)),
    *(
        ("example", "claude-haiku-5-5", TokenUsage(input_tokens=1_300, output_tokens=1_000))
        for _ in range(6)
    ),
    ("review", "claude-sonnet-5-5", TokenUsage(input_tokens=6_500, output_tokens=550)),
)


def call_record(role: str, model: str, usage: TokenUsage) -> CallRecord:
    return CallRecord(
        role=role,  # type: ignore[arg-type]
        model=model,
        usage=usage,
        cost_usd=PRICES.cost(model, usage),
        latency_s=1.5,
        outcome="ok",
        request_id="req_bench",
    )


async def time_record_call(ledger: Ledger, n: int) -> tuple[float, float]:
    """Median and p99 milliseconds of `record_call`, each a committed transaction."""
    run_id = await ledger.runs.start_run(team_id="T-rec", channel_id="C", user_id="U", question="q")
    record = call_record(*SHAPE[1])
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await ledger.runs.record_call(run_id, record)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def generated(total_calls: int) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Runs with their calls, spread evenly over the last 30 days."""
    runs = total_calls // len(SHAPE)
    costs = [to_nanos(PRICES.cost(m, u) or Decimal(0)) for _, m, u in SHAPE]
    strategy = [to_nanos(PRICES.cost_as("claude-opus-5-5", u) or Decimal(0)) for _, _, u in SHAPE]
    span = timedelta(days=30).total_seconds()
    for i in range(runs):
        started = NOW - timedelta(seconds=span * (1 - i / runs))
        run = {
            "id": str(uuid.UUID(int=i)), "user": f"U{i % 200}", "channel": f"C{i % 40}",
            "started": started, "cost": sum(costs), "strategy": sum(strategy), "calls": len(SHAPE),
        }  # fmt: skip
        calls = [
            {"role": role, "model": model, "usage": usage, "cost": cost, "strategy": strat}
            for (role, model, usage), cost, strat in zip(SHAPE, costs, strategy, strict=True)
        ]
        yield run, calls


def run_row(run: dict[str, Any], ts: Any) -> tuple[Any, ...]:
    return (
        run["id"], TEAM, run["channel"], run["user"], 40, None, "finished", ts, ts, 20.0,
        None, None, 0, run["cost"], run["strategy"], run["calls"], 0, 0, None,
    )  # fmt: skip


def call_rows(
    run: dict[str, Any], calls: list[dict[str, Any]], ts: Any
) -> Iterator[tuple[Any, ...]]:
    for c in calls:
        u = c["usage"]
        yield (
            run["id"], TEAM, run["user"], ts, c["role"], c["model"], "req_bench", None,
            u.input_tokens, u.output_tokens, 0, 0, 0, 0, c["cost"], c["strategy"],
            1.5, "ok", None, ts,
        )  # fmt: skip


RUN_COLUMNS = (
    "id", "team_id", "channel_id", "user_id", "question_chars", "question", "status",
    "started_at", "finished_at", "elapsed_s", "thread_channel", "thread_ts", "reserved_nanos",
    "cost_nanos", "strategy_nanos", "calls", "unpriced_calls", "strategy_unpriced_calls", "error",
)  # fmt: skip
CALL_COLUMNS = (
    "run_id", "team_id", "user_id", "run_started_at", "role", "model", "request_id",
    "component_index", "input_tokens", "output_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "cache_read_tokens", "thinking_tokens", "cost_nanos",
    "strategy_nanos", "latency_s", "outcome", "error", "created_at",
)  # fmt: skip


def load_sqlite(path: Path, total_calls: int) -> None:
    marks = ", ".join("?" * len(CALL_COLUMNS))
    with sqlite3.connect(path) as db:
        for run, calls in generated(total_calls):
            ts = run["started"].timestamp()
            db.execute(
                f"INSERT INTO runs ({', '.join(RUN_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                run_row(run, ts),
            )
            db.executemany(
                f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({marks})",
                call_rows(run, calls, ts),
            )
        # Rebuild what record_call keeps up to date, as the migration does.
        db.execute("DELETE FROM call_days")
        db.execute(call_days_backfill(SQLITE_DAY))
        db.execute("ANALYZE")
    db.close()


async def load_postgres(url: str, total_calls: int) -> None:
    import asyncpg  # type: ignore[import-untyped]

    runs: list[tuple[Any, ...]] = []
    calls: list[tuple[Any, ...]] = []
    for run, run_calls in generated(total_calls):
        runs.append(run_row(run, run["started"]))
        calls.extend(call_rows(run, run_calls, run["started"]))
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table("runs", records=runs, columns=RUN_COLUMNS)
        await conn.copy_records_to_table("calls", records=calls, columns=CALL_COLUMNS)
        await conn.execute("DELETE FROM call_days")  # rebuilt as the migration does
        await conn.execute(call_days_backfill(POSTGRES_DAY))
        await conn.execute("VACUUM ANALYZE runs")
        await conn.execute("VACUUM ANALYZE calls")
    finally:
        await conn.close()


async def time_summaries(ledger: Ledger, repeats: int) -> dict[str, float]:
    since, until = NOW - timedelta(days=30, seconds=1), NOW + timedelta(seconds=1)
    report = await ledger.reports.summary(TEAM, since=since, until=until)  # warm the cache once
    print(
        f"  summary saw {report.calls:,} calls in {report.runs:,} runs, {report.total_usd:.2f} USD"
    )
    timings: dict[str, list[float]] = {"team summary": [], "user summary": [], "30 days": []}
    for _ in range(repeats):
        for name, action in (
            ("team summary", ledger.reports.summary(TEAM, since=since, until=until)),
            ("user summary", ledger.reports.summary(TEAM, since=since, until=until, user_id="U7")),
            ("30 days", ledger.reports.daily(TEAM, days=30)),
        ):
            started = time.perf_counter()
            await action
            timings[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in timings.items()}


async def bench(name: str, url: str, load: Any, args: argparse.Namespace) -> list[str]:
    print(f"{name}: recording {args.records:,} calls one by one")
    async with open_ledger(url) as ledger:
        median, p99 = await time_record_call(ledger, args.records)
    print(f"{name}: bulk-loading {args.calls:,} calls")
    started = time.perf_counter()
    await load()
    print(f"  loaded in {time.perf_counter() - started:.1f} s")
    async with open_ledger(url) as ledger:
        timings = await time_summaries(ledger, args.repeats)
    return [
        f"| {name} | {median:.2f} | {p99:.2f} | {timings['team summary']:.0f}"
        f" | {timings['user summary']:.0f} | {timings['30 days']:.0f} |"
    ]


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )  # fmt: skip
    versions = f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    return f"{os.cpu_count()} cores ({model}), {versions}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite:///{path}"
        rows += await bench(
            "SQLite (WAL, synchronous=FULL)",
            url,
            lambda: asyncio.to_thread(load_sqlite, path, args.calls),
            args,
        )
    pg = os.environ.get("DATABASE_URL_TEST_POSTGRES")
    if pg:
        rows += await bench_postgres(pg, args)
    else:
        print("PostgreSQL skipped: DATABASE_URL_TEST_POSTGRES is unset")
    print(f"\nMachine: {machine()}")
    print(
        f"Summaries over {args.calls:,} calls (one team, 30 days), median of {args.repeats};"
        f" record_call timed over {args.records:,} calls.\n"
    )
    print(
        "| backend | record_call median ms | record_call p99 ms | team summary ms"
        " | one user's summary ms | 30-day daily ms |\n|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


async def bench_postgres(base: str, args: argparse.Namespace) -> list[str]:
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    url = f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    admin = await asyncpg.connect(base)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        return await bench(
            "PostgreSQL 15 (asyncpg, default durability)",
            url,
            lambda: load_postgres(url, args.calls),
            args,
        )
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
