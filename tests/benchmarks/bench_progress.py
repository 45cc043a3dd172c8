"""Progress-message benchmark: what the stream costs in Slack calls, and that it never slows
a run.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_progress            # ~4 minutes
    .venv/bin/python -m tests.benchmarks.bench_progress --reps 2 --burst 50

The real app (`tests.harness.running_stack`: Bolt over Socket Mode, the SQLite ledger, the
anthropic SDK) runs against both sandboxes in this process, the model API at realistic speed
(latency model × 1.0) and the default Slack pacing (1 post a second per channel).

(a) One run at a time, with the progress message and without: the run's wall time (command
    to the run's end) and its Web API calls by method. Compared within one run of the script.
(b) `--burst` runs at once from as many channels, without and with progress: the time for
    all of them, stream calls in total and per run, the most `chat.appendStream` calls in
    any 60 s window against Tier 4 (about 100 a minute per workspace), how many runs got a
    stream (`chat.startStream` is Tier 2, about 20 a minute), and `chat.update` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.benchmarks.burst import add_channels, most_in_any_window, run_burst
from tests.harness import running_stack

QUESTION = "Design a REST API for a social network"
METHODS = (
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
    "chat.update",
    "chat.postMessage",
    "assistant.threads.setStatus",
)


async def single(*, progress: bool) -> tuple[float, Counter[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(
            Path(tmp), time_scale=1.0, slack_posts_per_s=1.0, progress=progress
        ) as stack:
            started = time.monotonic()
            await stack.command(QUESTION)
            await stack.settle()
            elapsed = time.monotonic() - started
            calls = Counter(c.method for c in stack.slack.calls if c.method in METHODS)
    return elapsed, calls


async def burst(runs: int, *, progress: bool) -> tuple[Counter[str], int, int, float]:
    """(calls by method, most appends in any 60 s, failed stream calls, seconds for all)."""
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(
            Path(tmp), time_scale=1.0, slack_posts_per_s=1.0, progress=progress
        ) as stack:
            channels = add_channels(stack, runs, prefix="C0PROG")
            elapsed = await run_burst(stack, QUESTION, channels, timeout_s=900)
            calls = [c for c in stack.slack.calls if c.method in METHODS]
    window = most_in_any_window(c.at for c in calls if c.method == "chat.appendStream")
    failed = sum(not c.ok for c in calls if "Stream" in c.method)
    return Counter(c.method for c in calls if c.ok), window, failed, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    print("(a) one run at a time, model API at realistic speed")
    for progress in (False, True):
        results = [asyncio.run(single(progress=progress)) for _ in range(args.reps)]
        times = [t for t, _ in results]
        calls = results[-1][1]
        said = ", ".join(f"{m} {calls[m]}" for m in METHODS if calls[m])
        print(
            f"    progress {'on ' if progress else 'off'}: run {statistics.median(times):.2f} s "
            f"(of {', '.join(f'{t:.2f}' for t in times)}); calls: {said}"
        )
    if not args.burst:
        return
    n = args.burst
    for progress in (False, True):
        calls, window, failed, elapsed = asyncio.run(burst(n, progress=progress))
        print(
            f"(b) {n} runs at once, progress {'on' if progress else 'off'}: "
            f"all done in {elapsed:.0f} s"
        )
        for method in METHODS:
            print(f"    {method}: {calls[method]} ({calls[method] / n:.2f} a run)")
        if progress:
            print(f"    most chat.appendStream in any 60 s: {window} (Tier 4 ≈ 100/min)")
            print(f"    refused stream calls: {failed}")


if __name__ == "__main__":
    main()
