"""Run engine benchmark: what DBOS (bot/slack/engine.py) adds to a run.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_engine                 # ~4 minutes
    .venv/bin/python -m tests.benchmarks.bench_engine --reps 9 --steps 200 --no-postgres

(a) Per-step overhead: a workflow of N trivial durable steps (`engine.step`) against the
same N awaits without the engine, on SQLite (the engine's file beside a ledger in a temp
directory) and on PostgreSQL (DATABASE_URL_TEST_POSTGRES, else a throwaway cluster built by
tests/ledger/throwaway_pg.py if PostgreSQL's binaries are installed). The workflow's own
cost (start, status, result) is measured with N = 0 and taken out: per step =
(t(N) - t(0)) / N. Medians over --reps.

(b) One run end to end through the real `Pipeline` (the anthropic SDK over loopback to the
Claude stand-in, in this process), its calls made at once (`Immediate`) or as durable
steps (`DurableSteps`, inside a workflow, on SQLite), each divided by the run's critical
path as the stand-in timed it (plan + slowest example + review). `Immediate` never touches
the engine: its spread is the control, what the machine's own noise does to a run.

Both parts run the engine's SQLite file two ways, taking turns: in write-ahead-log mode, as
`engine.open_engine` sets it (after), and in SQLite's default rollback journal, as before
that (`engine._write_ahead_log` skipped; each engine has a fresh file). (b) runs --blocks
blocks; in each, each mode opens one engine (the modes' order alternating from block to
block) and makes --runs runs of each kind, `Immediate` and `DurableSteps` taking turns,
after one warm-up of each. Median, 90th percentile and worst over all blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

from dbos import DBOS

from bot.core.claude import Claude
from bot.core.events import Event
from bot.core.pipeline import Immediate, Pipeline, Steps
from bot.core.pricing import PriceTable
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.settings import Settings
from bot.slack import engine

QUESTION = "Design a REST API for a social network"
# The engine's SQLite journal: after (as `open_engine` sets it), before (SQLite's default).
WAL, ROLLBACK = "WAL", "rollback journal"


def journal_of(settings: Settings) -> str:
    """The journal mode the engine's SQLite file is in."""
    path = engine.system_database_url(settings.database_url).removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])


@contextlib.contextmanager
def journal(mode: str) -> Iterator[None]:
    """Engines opened inside keep their SQLite file in `mode`."""
    if mode == WAL:
        yield
        return
    with mock.patch.object(engine, "_write_ahead_log", lambda url: None):
        yield


async def trivial(i: int) -> int:
    return i


@DBOS.workflow(name="bench.trivial_steps")
async def trivial_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await engine.step(f"s{i}", partial(trivial, i))
    return total


async def plain_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await trivial(i)
    return total


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    began = time.perf_counter()
    await work()
    return time.perf_counter() - began


async def in_workflow(workflow: Callable[..., Any], *args: Any) -> Any:
    handle = await DBOS.start_workflow_async(workflow, *args)
    return await handle.get_result()


@dataclass
class Overhead:
    backend: str
    plain_us: float  # per step, no engine
    workflow_ms: float  # a workflow of no steps: start to result
    step_us: float  # per durable step, the workflow's own cost taken out


async def step_overhead(
    backend: str, database_url: str, *, n: int, reps: int, mode: str = WAL
) -> Overhead:
    settings = Settings(database_url=database_url)
    with journal(mode):
        async with engine.open_engine(settings, executor_id="bench"):
            await in_workflow(trivial_steps, n)  # warm-up: tables, connections
            plain, empty, full = [], [], []
            for _ in range(reps):
                plain.append(await timed(partial(plain_steps, n)))
                empty.append(await timed(partial(in_workflow, trivial_steps, 0)))
                full.append(await timed(partial(in_workflow, trivial_steps, n)))
    return Overhead(
        backend,
        plain_us=statistics.median(plain) / n * 1e6,
        workflow_ms=statistics.median(empty) * 1e3,
        step_us=(statistics.median(full) - statistics.median(empty)) / n * 1e6,
    )


@contextlib.asynccontextmanager
async def postgres_url(wanted: bool) -> AsyncIterator[str | None]:
    if not wanted:
        yield None
        return
    url = os.environ.get("DATABASE_URL_TEST_POSTGRES")
    if url:
        yield url
        return
    from tests.ledger.throwaway_pg import _bindir, throwaway_postgres

    if _bindir() is None:
        yield None
        return
    async with throwaway_postgres() as pg:
        yield pg.url


# --- (b) one run through the pipeline -------------------------------------------------------

_pipeline: Pipeline | None = None


async def _ignore(event: Event) -> None:
    return None


async def _no_guard() -> None:
    return None


@DBOS.workflow(name="bench.pipeline_run")
async def durable_run(question: str) -> str:
    assert _pipeline is not None and DBOS.workflow_id is not None
    steps = engine.DurableSteps(DBOS.workflow_id, _no_guard)
    await _pipeline.run(question, emit=_ignore, steps=steps, resumable=True)
    return "ended"


def critical_path(claude: ClaudeSandbox, since: int) -> float:
    durations: dict[str, list[float]] = {}
    for r in claude.messages()[since:]:
        assert r.finished is not None and r.status == 200, r.summary()
        durations.setdefault(str(r.role), []).append(r.finished - r.started)
    return (
        sum(durations.get("plan", []))
        + max(durations.get("example", [0.0]))
        + sum(durations.get("review", []))
    )


async def one_run(claude: ClaudeSandbox, durable: bool) -> tuple[float, float]:
    assert _pipeline is not None
    since = len(claude.messages())
    began = time.perf_counter()
    if durable:
        await in_workflow(durable_run, QUESTION)
    else:
        steps: Steps = Immediate()
        await _pipeline.run(QUESTION, emit=_ignore, steps=steps)
    wall = time.perf_counter() - began
    return wall, critical_path(claude, since)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def spread(values: list[float], fmt: str = ".3f") -> str:
    """Median, 90th percentile and worst."""
    return f"{statistics.median(values):{fmt}} / {p90(values):{fmt}} / {max(values):{fmt}}"


async def pipeline_runs(
    *, reps: int, time_scale: float, mode: str = WAL
) -> dict[str, list[tuple[float, float]]]:
    global _pipeline
    prices = PriceTable.load()
    results: dict[str, list[tuple[float, float]]] = {"Immediate": [], "DurableSteps": []}
    with tempfile.TemporaryDirectory() as tmp:
        async with ClaudeSandbox(latency=LatencyModel(time_scale=time_scale)) as claude:
            settings = Settings(
                anthropic_api_key=claude.api_key,
                anthropic_base_url=claude.base_url,
                database_url=f"sqlite:///{Path(tmp) / 'ledger.db'}",
            )
            model = Claude.from_settings(settings, price=prices.cost)
            _pipeline = Pipeline(model, settings=settings, prices=prices)
            try:
                with journal(mode):
                    async with engine.open_engine(settings, executor_id="bench"):
                        assert (journal_of(settings) == "wal") == (mode == WAL), mode
                        await one_run(claude, durable=False)  # warm-up of each
                        await one_run(claude, durable=True)
                        for _ in range(reps):
                            results["Immediate"].append(await one_run(claude, durable=False))
                            results["DurableSteps"].append(await one_run(claude, durable=True))
            finally:
                await model.aclose()
                _pipeline = None
    return results


async def overheads(args: argparse.Namespace) -> None:
    print(f"(a) per-step overhead: N = {args.steps} trivial steps, {args.reps} reps, medians")
    print("| backend | plain await, µs/step | empty workflow, ms | durable step, µs/step |")
    print("|---|---|---|---|")
    rows: list[Overhead] = []
    for mode in (ROLLBACK, WAL, ROLLBACK, WAL):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
            rows.append(
                await step_overhead(f"SQLite, {mode}", url, n=args.steps, reps=args.reps, mode=mode)
            )
    async with postgres_url(args.postgres) as pg:
        if pg is not None:
            rows.append(await step_overhead("PostgreSQL", pg, n=args.steps, reps=args.reps))
        else:
            print("(PostgreSQL: not available, left out)")
    for row in rows:
        print(f"| {row.backend} | {row.plain_us:.2f} | {row.workflow_ms:.2f} | {row.step_us:.0f} |")


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def end_to_end(args: argparse.Namespace) -> None:
    runs = args.blocks * args.runs
    print(
        f"\n(b) one run end to end (time scale {args.time_scale}), {args.blocks} blocks of "
        f"{args.runs} runs of each kind per journal mode ({runs} each), "
        "median / 90th percentile / worst"
    )
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for block in range(args.blocks):
        modes = (ROLLBACK, WAL) if block % 2 == 0 else (WAL, ROLLBACK)
        for mode in modes:
            began = load()
            # One event loop each: DBOS replaces a loop's default executor with its own.
            results = asyncio.run(
                pipeline_runs(reps=args.runs, time_scale=args.time_scale, mode=mode)
            )
            print(f"block {block + 1}, {mode}: load average (1 min) {began} to {load()}")
            for kind, pairs in results.items():
                samples.setdefault((mode, kind), []).extend(pairs)
    print("| engine's journal | steps | wall s | critical path s | wall ÷ critical |")
    print("|---|---|---|---|---|")
    for mode in (ROLLBACK, WAL):
        for kind in ("Immediate", "DurableSteps"):
            pairs = samples[(mode, kind)]
            walls = [w for w, _ in pairs]
            paths = [c for _, c in pairs]
            ratios = [w / c for w, c in pairs]
            print(f"| {mode} | {kind} | {spread(walls)} | {spread(paths)} | {spread(ratios)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="(a): repetitions")
    parser.add_argument("--steps", type=int, default=100, help="(a): steps per workflow")
    parser.add_argument("--blocks", type=int, default=4, help="(b): blocks")
    parser.add_argument("--runs", type=int, default=5, help="(b): runs of each kind per block")
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--only", choices=("a", "b"), help="run only one part")
    args = parser.parse_args()
    if args.only != "b":
        asyncio.run(overheads(args))
    if args.only != "a":
        end_to_end(args)


if __name__ == "__main__":
    main()
