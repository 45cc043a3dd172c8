"""Pipeline benchmark: how close a run gets to its critical path, its CPU time and its bill.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_pipeline            # ~1 minute
    .venv/bin/python -m tests.benchmarks.bench_pipeline --runs 9 --time-scale 0.2
    .venv/bin/python -m tests.benchmarks.bench_pipeline --runs 2 --profile  # where CPU goes

The real `Pipeline` and `Claude` (anthropic SDK over loopback HTTP) run in this process;
the Claude sandbox runs in a child process, so `time.process_time()` here counts only the
pipeline, the SDK and its HTTP client. The sandbox paces answers with its `LatencyModel`
(Opus 2.0 s to first token then 50 tokens/s, Haiku 0.4 s and 180/s, Sonnet 1.0 s and
80/s), scaled by `--time-scale` (default 0.1: a 10 s Opus call takes 1 s here).

To fix the number of components at 2, 4 and 6, the plan call answers with a JSON plan
(a sandbox rule's `text`); each example answers with Markdown of a fixed length, from
600 to 1,000 visible tokens across the components, so the example calls have distinct
latencies and an ~800-1,200-token budget each (with thinking); the review answers
with ~450 visible tokens. Thinking comes from the sandbox (effort low: ~120 tokens a
call, billed as output). For each component count, over `--runs` runs (interleaved,
after one warm-up each), it prints median (min-max) of: wall time ÷ critical path (plan
call + slowest example call + review call, as the sandbox timed them), wall time ÷
sequential time (the sum of every call's duration), and CPU milliseconds per run; then the
run's bill from `RunFinished.cost` against the same tokens all on Opus, with the token
profile, and the often-quoted 87.5% saving (Opus 200, 3 × Haiku 1,000, Sonnet 500 tokens
against 4,000 Opus tokens, priced at input rates) recomputed at today's prices.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing
import os
import platform
import pstats
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from blocks import format_usd
from bot.core.claude import Claude
from bot.core.events import Event, ExampleReady, RunFinished
from bot.core.pipeline import Pipeline
from bot.core.pricing import CostSummary, PriceTable
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.settings import Settings

QUESTION = "Design a REST API for a social network"
COMPONENT_COUNTS = (2, 4, 6)
TYPICAL_COMPONENTS = 4
REPO = Path(__file__).resolve().parents[2]

# (name, instruction) for up to six components of the question above.
COMPONENTS = (
    ("Resource model", "Show the core resources (users, posts, follows) and their fields"),
    ("Authentication", "Show bearer-token middleware that rejects expired tokens"),
    ("Pagination", "Show cursor pagination of a user's feed with a stable sort"),
    ("Rate limiting", "Show a per-user token bucket returning 429 with Retry-After"),
    ("Error format", "Show one JSON error envelope used by every endpoint"),
    ("Versioning", "Show a versioned URL prefix and a deprecation header"),
)


# --- a sandbox in its own process -------------------------------------------------------


class SandboxProcess:
    """Runs `target(conn, **kwargs)` in a spawned process; `async with` yields what the
    child sends first (its URLs) and stops it on exit by sending it anything."""

    def __init__(self, target: Callable[..., None], **kwargs: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=target, args=(child,), kwargs=kwargs, daemon=True)

    async def __aenter__(self) -> dict[str, Any]:
        self._process.start()
        info: dict[str, Any] = await asyncio.to_thread(self._conn.recv)
        return info

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._conn.send("stop")
        await asyncio.to_thread(self._process.join, 10)
        if self._process.is_alive():
            self._process.terminate()


def serve_claude(conn: Connection, *, time_scale: float) -> None:
    """Child process: the Claude sandbox until the parent says stop."""
    asyncio.run(_serve_claude(conn, time_scale))


async def _serve_claude(conn: Connection, time_scale: float) -> None:
    async with ClaudeSandbox(latency=LatencyModel(time_scale=time_scale)) as claude:
        conn.send({"claude_url": claude.base_url, "api_key": claude.api_key})
        await asyncio.to_thread(conn.recv)


class ClaudeControl:
    """The Claude sandbox's control API (`/_sandbox/rules`, `/_sandbox/requests`)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url

    async def add_rule(self, **rule: Any) -> None:
        async with self._session.post(f"{self._base}/_sandbox/rules", json=rule) as response:
            if response.status != 201:
                raise RuntimeError(f"rule refused: {await response.text()}")

    async def clear_rules(self) -> None:
        async with self._session.delete(f"{self._base}/_sandbox/rules") as response:
            response.raise_for_status()

    async def requests(self) -> list[dict[str, Any]]:
        """Every recorded call, oldest first; times are the child's `time.monotonic()`,
        which on Linux is the same clock as ours."""
        async with self._session.get(f"{self._base}/_sandbox/requests") as response:
            calls: list[dict[str, Any]] = await response.json()
        return [c for c in calls if c["endpoint"] == "messages"]


# --- a typical run's answers ------------------------------------------------------------


def plan_text(n: int) -> str:
    essence = (
        "Model the network as a few resource collections behind one versioned, stateless "
        "HTTP surface. Authenticate every request with short-lived bearer tokens and page "
        "every list with cursors, so the API scales out without server-side sessions. The "
        "decisive trade-off is cursor pagination over offsets: stable feeds, no page jumps."
    )
    components = [{"name": name, "instruction": text} for name, text in COMPONENTS[:n]]
    return json.dumps(
        {"title": "REST API for a social network", "essence": essence, "components": components}
    )


def example_tokens(index: int, n: int) -> int:
    """Visible tokens of component `index`'s example: 600 to 1,000, one length each."""
    return 600 + round(400 * index / max(n - 1, 1))


def example_text(name: str, tokens: int) -> str:
    """Markdown in the example prompt's shape, padded to ~`tokens` tokens (4 chars each).
    The padding is prose, shared as the prompt asks for it: 2-3 sentences opening, 2-3 on
    why it works, 1-2 on integration (2 : 2 : 1), so REVIEW_READS=code, which leaves out
    the last two sections, is measured on a fair split."""
    code = "\n".join(
        f"def handler_{i}(request):  # {name.lower()} step {i}\n    return respond(request)"
        for i in range(7)
    )
    opening = (
        f"# {name}\n\nThis component keeps {name.lower()} in one place so every endpoint "
        "behaves the same way. The pattern is a small function the router calls. "
    )
    middle = f"\n\n```python\n{code}\n```\n\n## Why this works\n"
    tail = (
        "\n\n## Integration point\nThe router mounts this before the handlers of every "
        "resource, so the other components rely on it without importing it. "
    )
    filler = (
        "The mechanism is deliberately small: state lives in the request, not the server, "
        "and each step can be tested on its own. "
    )
    room = max(tokens * 4 - len(opening) - len(middle) - len(tail), 0)
    pad = (filler * (room // len(filler) + 1))[:room]
    first, second = room * 2 // 5, room * 4 // 5
    return opening + pad[:first] + middle + pad[first:second] + tail + pad[second:]


def review_text(names: Sequence[str]) -> str:
    """A schema-valid review of ~450 visible tokens, whatever the number of components."""
    reason = "Matches the strategy; the example is correct and small enough to adapt."
    checks = [
        {"component": name, "verdict": "warning" if i == 1 else "ok", "reason": reason}
        for i, name in enumerate(names)
    ]
    gap = "No example shows how tokens are revoked when a user logs out everywhere at once"
    step = "Add an integration test that exercises this path end to end against a database"
    review: dict[str, list[Any]] = {"checks": checks, "gaps": [], "next_steps": []}
    while len(json.dumps(review)) < 1800:
        review["gaps"].append(gap)
        review["next_steps"].append(step)
    return json.dumps(review)


async def set_typical_run(control: ClaudeControl, n: int) -> None:
    """Rules that make the next runs plan `n` components with the answers above."""
    names = [name for name, _ in COMPONENTS[:n]]
    await control.clear_rules()
    await control.add_rule(role="plan", text=plan_text(n))
    for index, name in enumerate(names):
        await control.add_rule(
            role="example",
            contains=f'<component name="{name}">',
            text=example_text(name, example_tokens(index, n)),
        )
    await control.add_rule(role="review", text=review_text(names))


def critical_path(calls: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(plan + slowest example + review, sum of all calls), from the sandbox's timings."""
    durations = {
        role: [c["duration_s"] for c in calls if c["role"] == role]
        for role in ("plan", "example", "review")
    }
    critical = sum(durations["plan"]) + max(durations["example"]) + sum(durations["review"])
    return critical, sum(c["duration_s"] for c in calls)


# --- measuring --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    wall_s: float
    critical_s: float
    sequential_s: float
    cpu_s: float
    cost: CostSummary


async def measure_run(pipeline: Pipeline, control: ClaudeControl, n: int) -> Sample:
    before = len(await control.requests())
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    cpu, started = time.process_time(), time.perf_counter()
    await pipeline.run(QUESTION, emit=emit)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    calls = (await control.requests())[before:]
    finished = events[-1]
    examples = sum(isinstance(e, ExampleReady) for e in events)
    if not isinstance(finished, RunFinished) or examples != n:
        raise RuntimeError(f"the run did not finish with {n} examples: {events[-1]!r}")
    if any(c["status"] != 200 for c in calls):
        raise RuntimeError(f"a call failed: {calls}")
    critical, sequential = critical_path(calls)
    return Sample(wall, critical, sequential, cpu, finished.cost)


def spread(values: Sequence[float], fmt: str = ".3f") -> str:
    """Median (min-max)."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, Python {platform.python_version()}"


def revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "bot", "blocks")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes in bot/" if dirty else "")


# --- cost ------------------------------------------------------------------------------


def profile_rows(cost: CostSummary, roles: dict[str, str]) -> list[str]:
    rows = []
    for m in cost.by_model:
        u = m.usage
        rows.append(
            f"| {roles.get(m.model, '?')} | {m.model} | {m.calls} | {u.input_tokens:,} | "
            f"{u.output_tokens:,} ({u.thinking_tokens:,}) | {format_usd(m.cost_usd)} |"
        )
    return rows


def quoted_example_comparison() -> list[str]:
    """The often-quoted 87.5% example (Opus 200, 3 × Haiku 1,000, Sonnet 500 tokens; all-Opus
    4,000 tokens), priced its way and at today's list prices."""
    M = Decimal(1_000_000)
    # (input, output) rates per million: the 2025 list prices the
    # 87.5% example used, then Anthropic's list prices as of November 2026 (bot/core/prices.json).
    prices_2025 = {"opus": Decimal("15"), "haiku": Decimal("0.80"), "sonnet": Decimal("3")}
    now_in = {"opus": Decimal("4.00"), "haiku": Decimal("0.10"), "sonnet": Decimal("2.00")}
    now_out = {"opus": Decimal("20.00"), "haiku": Decimal("0.50"), "sonnet": Decimal("10.00")}
    # The example's calls as (model, input tokens by its own data flow, tokens it counted).
    calls = [("opus", 0, 200), *[("haiku", 200, 1000)] * 3, ("sonnet", 3200, 500)]
    counted = sum(t for _, _, t in calls)

    def orchestrated(
        rates_counted: dict[str, Decimal], rates_in: dict[str, Decimal] | None
    ) -> Decimal:
        total = sum((rates_counted[m] * t for m, _, t in calls), Decimal(0))
        if rates_in is not None:
            total += sum((rates_in[m] * i for m, i, _ in calls), Decimal(0))
        return total / M

    def all_opus(rate_counted: Decimal, rate_in: Decimal | None, tokens: int) -> Decimal:
        total = rate_counted * tokens
        if rate_in is not None:
            total += rate_in * sum(i for _, i, _ in calls)
        return total / M

    def row(label: str, ours: Decimal, opus: Decimal) -> str:
        return (
            f"| {label} | {format_usd(ours)} | {format_usd(opus)} | "
            f"{(1 - ours / opus) * 100:.1f}% |"
        )

    return [
        "| 87.5% example profile, priced as | orchestrated | all-Opus | saving |",
        "|---|---|---|---|",
        "| as published (its rounded sums) | $0.0075 | $0.0600 | 87.5% |",
        row(
            "2025 prices, input rates, all-Opus = its 4,000 tokens",
            orchestrated(prices_2025, None),
            all_opus(prices_2025["opus"], None, 4000),
        ),
        row(
            "today, input rates only, all-Opus = its 4,000 tokens",
            orchestrated(now_in, None),
            all_opus(now_in["opus"], None, 4000),
        ),
        row(
            "today, input rates only, all-Opus = the same 3,700 tokens",
            orchestrated(now_in, None),
            all_opus(now_in["opus"], None, counted),
        ),
        row(
            "today, those tokens as output (what they are)",
            orchestrated(now_out, None),
            all_opus(now_out["opus"], None, counted),
        ),
        row(
            "today, output + the inputs its data flow implies",
            orchestrated(now_out, now_in),
            all_opus(now_out["opus"], now_in["opus"], counted),
        ),
    ]


# --- main -------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> None:
    code = revision()  # before running: others may commit meanwhile
    prices = PriceTable.load()
    samples: dict[int, list[Sample]] = {n: [] for n in COMPONENT_COUNTS}
    async with (
        SandboxProcess(serve_claude, time_scale=args.time_scale) as urls,
        aiohttp.ClientSession() as session,
    ):
        control = ClaudeControl(session, urls["claude_url"])
        settings = Settings(
            anthropic_api_key=urls["api_key"],
            anthropic_base_url=urls["claude_url"],
            review_reads=args.review_reads,
        )
        claude = Claude.from_settings(settings, price=prices.cost)
        pipeline = Pipeline(claude, settings=settings, prices=prices)
        try:
            for n in COMPONENT_COUNTS:  # warm-up: imports, connections, first-call costs
                await set_typical_run(control, n)
                await measure_run(pipeline, control, n)
            profiler = cProfile.Profile() if args.profile else None
            for _ in range(args.runs):  # interleaved, so drift hits every count alike
                for n in COMPONENT_COUNTS:
                    await set_typical_run(control, n)
                    if profiler:
                        profiler.enable()
                    samples[n].append(await measure_run(pipeline, control, n))
                    if profiler:
                        profiler.disable()
        finally:
            await claude.aclose()
    report(samples, settings, args, code)
    if profiler:
        print("\nWhere this process's time went in the measured runs (cProfile, cumulative):")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def report(
    samples: dict[int, list[Sample]], settings: Settings, args: argparse.Namespace, code: str
) -> None:
    print(f"Machine: {machine()}; code {code}; REVIEW_READS={settings.review_reads}")
    print(
        f"Sandbox latency model × {args.time_scale:g}; {args.runs} runs per row after a "
        "warm-up; median (min-max)\n"
    )
    print(
        "| components | wall s | critical path s | wall ÷ critical | wall ÷ sequential "
        "| CPU ms/run | cost | all-Opus | saving |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, runs in samples.items():
        cost = runs[0].cost
        if len({s.cost.total_usd for s in runs}) > 1:  # the sandbox's usage is deterministic
            raise RuntimeError(f"runs with {n} components billed differently")
        saving = "unpriced" if cost.saving_pct is None else f"{cost.saving_pct:.1f}%"
        print(
            f"| {n} | {spread([s.wall_s for s in runs], '.2f')} "
            f"| {spread([s.critical_s for s in runs], '.2f')} "
            f"| {spread([s.wall_s / s.critical_s for s in runs])} "
            f"| {spread([s.wall_s / s.sequential_s for s in runs], '.2f')} "
            f"| {spread([s.cpu_s * 1000 for s in runs], '.0f')} "
            f"| {format_usd(cost.total_usd)} | {format_usd(cost.all_strategy_model_usd)} "
            f"| {saving} |"
        )
    typical = samples[TYPICAL_COMPONENTS][0].cost
    roles = {
        settings.strategy_model: "plan",
        settings.examples_model: "examples",
        settings.review_model: "review",
    }
    print(
        f"\nToken profile of a typical run ({TYPICAL_COMPONENTS} components), "
        "as the sandbox billed it:\n"
    )
    print("| role | model | calls | input | output (of it thinking) | cost |")
    print("|---|---|---|---|---|---|")
    print("\n".join(profile_rows(typical, roles)))
    print(
        f"| total | | | | | {format_usd(typical.total_usd)} "
        f"(all-Opus {format_usd(typical.all_strategy_model_usd)}, "
        f"saving {typical.saving_pct:.1f}%) |"
    )
    print("\nThe often-quoted 87.5% example, recomputed:\n")
    print("\n".join(quoted_example_comparison()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs per count")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile of the measured runs (which slows them: ratios suffer)",
    )
    parser.add_argument(
        "--time-scale", type=float, default=0.1, help="sandbox latency multiplier (1.0 = realistic)"
    )
    parser.add_argument(
        "--review-reads",
        choices=("examples", "code"),
        default="examples",
        help="REVIEW_READS for the runs (default examples, the product's default)",
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
