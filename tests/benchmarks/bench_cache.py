"""Prompt-caching benchmark: would caching the examples' shared prefix pay for itself?

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_cache               # ~1 minute
    .venv/bin/python -m tests.benchmarks.bench_cache --runs 5 --time-scale 1

Every example request of a run starts with the same prefix: the example system prompt, the
question and the strategy. Caching it means marking it with `cache_control`, letting one
call write it and starting the others once that call has begun answering (parallel calls
fired together each write). This script builds that prefix exactly as the app does
(`bot.core.prompts`), with a six-component strategy, for a typical question, one at the
2,000-character limit and longer ones (possible only with a raised
`ORCHESTRATE_MAX_QUESTION_CHARS`). For Haiku 5.5, Sonnet 5.5 and Sonnet 4.6 it sends the six
example calls through the real SDK to the Claude sandbox both ways: all at once without
caching, and warmed (first call, then the rest) with caching, whatever the prefix's size.
It prints the prefix size, the minimum cacheable prefix as the sandbox applies it (4,096
for Haiku and 1,024 for Sonnet 4.x; 4,096 for every 5.5 model, whose minimums are
unverified), what was written to and read from the cache, the six calls' cost at list
prices both ways, and their wall time both ways (median of `--runs`), with the sandbox's
latency model scaled by `--time-scale`; and a third way, marked but all fired at once (what
the app does when the prefix is under the minimum it assumes). `--cache-minimum 512` gives
the 5.5 models the minimum secondary sources report instead of the stand-in's 4,096.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anthropic

from blocks import format_usd
from bot.core import prompts
from bot.core.claude import max_tokens_for, to_token_usage
from bot.core.models import Component, Strategy
from bot.core.pricing import PriceTable
from bot.sandbox.claude.models import cache_minimum
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel

TYPICAL = "Design a REST API for a social network"
LONG = (TYPICAL + ". Context: the platform has posts, follows, likes and comments. ") * 200
QUESTIONS = (
    ("typical", TYPICAL),
    ("2,000 chars", LONG[:2000]),  # ORCHESTRATE_MAX_QUESTION_CHARS's default
    ("8,000 chars", LONG[:8000]),  # only if that limit is raised
    ("20,000 chars", LONG[:20000]),
)
STRATEGY = Strategy(
    "Social network REST API",
    "Model posts, follows and likes as resources behind versioned routes; validate at the "
    "edge, paginate every list with cursors, and map every failure to one error shape so "
    "clients can rely on status codes. The trade-off: more routes, fewer surprises.",
    tuple(
        Component(name, instruction)
        for name, instruction in (
            ("Resource model", "Show the user, post and follow resources with their fields"),
            ("Routing", "Show the routes with verbs, status codes and a version prefix"),
            ("Validation", "Show request validation returning clear 422 error bodies"),
            ("Pagination", "Show cursor pagination for the feed and follower lists"),
            ("Error handling", "Show one error shape mapped from domain exceptions"),
            ("Rate limiting", "Show a per-user token bucket on write endpoints"),
        )
    ),
)
MODELS = ("claude-haiku-5-5", "claude-sonnet-5-5", "claude-sonnet-4-6")
MODELS_5_5 = tuple(m for m in MODELS if "-5-5" in m)


@dataclass(frozen=True, slots=True)
class Stage:
    cost: Decimal
    wall_s: float
    cache_written: int
    cache_read: int


def content(question: str, component: Component, *, cache: bool) -> list[dict[str, Any]]:
    context: dict[str, Any] = {
        "type": "text",
        "text": prompts.example_context(question, STRATEGY),
    }
    if cache:
        context["cache_control"] = {"type": "ephemeral"}
    return [context, {"type": "text", "text": prompts.example_user(component)}]


async def example(
    client: anthropic.AsyncAnthropic,
    model: str,
    question: str,
    component: Component,
    *,
    cache: bool,
    started: asyncio.Event | None = None,
) -> anthropic.types.Usage:
    async with client.messages.stream(
        model=model,
        max_tokens=max_tokens_for("example", "low"),
        system=prompts.EXAMPLE_SYSTEM,
        messages=[{"role": "user", "content": content(question, component, cache=cache)}],  # type: ignore[typeddict-item]
        output_config={"effort": "low"},
    ) as stream:
        async for event in stream:
            if event.type == "message_start" and started is not None:
                started.set()
        return (await stream.get_final_message()).usage


async def stage(
    client: anthropic.AsyncAnthropic,
    prices: PriceTable,
    model: str,
    question: str,
    cache: bool,
    *,
    warm: bool = True,
) -> Stage:
    components = list(STRATEGY.components)
    clock = time.monotonic()
    if cache and not warm:  # marked, but all fired at once (each may write)
        calls = [example(client, model, question, c, cache=True) for c in components]
        usages = list(await asyncio.gather(*calls))
    elif cache:
        started = asyncio.Event()
        first = asyncio.create_task(
            example(client, model, question, components[0], cache=True, started=started)
        )
        await started.wait()
        rest = [example(client, model, question, c, cache=True) for c in components[1:]]
        usages = list(await asyncio.gather(first, *rest))
    else:
        calls = [example(client, model, question, c, cache=False) for c in components]
        usages = list(await asyncio.gather(*calls))
    wall = time.monotonic() - clock
    tokens = [to_token_usage(u) for u in usages]
    cost = sum((prices.cost(model, t) or Decimal(0) for t in tokens), Decimal(0))
    written = sum(t.cache_write_5m_tokens for t in tokens)
    read = sum(t.cache_read_tokens for t in tokens)
    return Stage(cost, wall, written, read)


async def prefix_tokens(client: anthropic.AsyncAnthropic, model: str, question: str) -> int:
    context = prompts.example_context(question, STRATEGY)
    counted = await client.messages.count_tokens(
        model=model,
        system=prompts.EXAMPLE_SYSTEM,
        messages=[{"role": "user", "content": [{"type": "text", "text": context}]}],
    )
    return counted.input_tokens


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


async def main(runs: int, time_scale: float, minimum: int | None) -> None:
    prices = PriceTable.load()
    print(f"Python {platform.python_version()}, runs={runs}, time_scale={time_scale}")
    minimums = dict.fromkeys(MODELS_5_5, minimum) if minimum else None
    latency = LatencyModel(time_scale=time_scale)
    async with ClaudeSandbox(latency=latency, cache_minimums=minimums) as sandbox:
        client = anthropic.AsyncAnthropic(
            api_key=sandbox.api_key, base_url=sandbox.base_url, max_retries=0
        )
        for model in MODELS:
            for label, question in QUESTIONS:
                prefix = await prefix_tokens(client, model, question)
                plain: list[Stage] = []
                cached: list[Stage] = []
                marked: list[Stage] = []
                for _ in range(runs):
                    sandbox.cache.clear()
                    plain.append(await stage(client, prices, model, question, cache=False))
                    sandbox.cache.clear()
                    cached.append(await stage(client, prices, model, question, cache=True))
                    sandbox.cache.clear()
                    marked.append(
                        await stage(client, prices, model, question, cache=True, warm=False)
                    )
                report(model, label, prefix, plain, cached, marked, sandbox)
        await client.close()


def report(
    model: str,
    label: str,
    prefix: int,
    plain: list[Stage],
    cached: list[Stage],
    marked: list[Stage],
    sandbox: ClaudeSandbox,
) -> None:
    cost_plain, cost_cached = plain[0].cost, cached[0].cost  # deterministic per prompt
    saving = (1 - cost_cached / cost_plain) * 100 if cost_plain else Decimal(0)
    marked_saving = (1 - marked[0].cost / cost_plain) * 100 if cost_plain else Decimal(0)
    wall_plain = median([s.wall_s for s in plain])
    wall_cached = median([s.wall_s for s in cached])
    wall_marked = median([s.wall_s for s in marked])
    minimum = cache_minimum(model, sandbox.cache.minimums)
    print(
        f"{model:18} {label:12} prefix {prefix:>5,} tokens (minimum {minimum:,}) "
        f"cache written {cached[0].cache_written:>5,} read {cached[0].cache_read:>5,} | "
        f"6 examples {format_usd(cost_plain)} → warmed {format_usd(cost_cached)} "
        f"({saving:+.1f}% saved), marked at once {format_usd(marked[0].cost)} "
        f"({marked_saving:+.1f}%) | wall {wall_plain:.2f} s → warmed {wall_cached:.2f} s "
        f"(×{wall_cached / wall_plain:.2f}), at once {wall_marked:.2f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.5)
    parser.add_argument(
        "--cache-minimum",
        type=int,
        help="the 5.5 models' minimum cacheable prefix in the stand-in (default: its stricter "
        "4,096; 512 is what secondary sources give)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.time_scale, args.cache_minimum))
