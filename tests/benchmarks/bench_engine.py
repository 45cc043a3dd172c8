"""Run engine benchmark: what DBOS (bot/slack/engine.py) adds to a run.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_engine                 # ~1 minute
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
path as the stand-in timed it (plan + slowest example + review). Medians (min-max) over
--reps, interleaved, after one warm-up of each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from dbos import DBOS

from bot.core.claude import Claude
from bot.core.events import Event
from bot.core.pipeline import Immediate, Pipeline, Steps
from bot.core.pricing import PriceTable
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.settings import Settings
from bot.slack import engine

QUESTION = "Design a REST API for a social network"


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


async def step_overhead(backend: str, database_url: str, *, n: int, reps: int) -> Overhead:
    settings = Settings(database_url=database_url)
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


def spread(values: list[float], fmt: str = ".3f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


async def pipeline_runs(*, reps: int, time_scale: float) -> dict[str, list[tuple[float, float]]]:
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
                async with engine.open_engine(settings, executor_id="bench"):
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
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        rows.append(await step_overhead("SQLite", url, n=args.steps, reps=args.reps))
    async with postgres_url(args.postgres) as pg:
        if pg is not None:
            rows.append(await step_overhead("PostgreSQL", pg, n=args.steps, reps=args.reps))
        else:
            print("(PostgreSQL: not available, left out)")
    for row in rows:
        print(f"| {row.backend} | {row.plain_us:.2f} | {row.workflow_ms:.2f} | {row.step_us:.0f} |")


async def end_to_end(args: argparse.Namespace) -> None:
    print(
        f"\n(b) one run end to end (time scale {args.time_scale}), {args.reps} reps, "
        "median (min-max)"
    )
    print("| steps | wall s | critical path s | wall ÷ critical |")
    print("|---|---|---|---|")
    results = await pipeline_runs(reps=args.reps, time_scale=args.time_scale)
    for name, samples in results.items():
        walls = [w for w, _ in samples]
        paths = [c for _, c in samples]
        ratios = [w / c for w, c in samples]
        print(f"| {name} | {spread(walls)} | {spread(paths)} | {spread(ratios)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    args = parser.parse_args()
    # One event loop each: DBOS replaces a loop's default executor with its own pool and
    # shuts it down when destroyed, so a loop that closed an engine cannot run another.
    asyncio.run(overheads(args))
    asyncio.run(end_to_end(args))


if __name__ == "__main__":
    main()
