"""Live-run benchmark: how soon the strategy shows, and what drafting costs in chat.update.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_live            # ~3 minutes
    .venv/bin/python -m tests.benchmarks.bench_live --reps 3 --burst 50

The real app (`tests.harness.running_stack`: Bolt over Socket Mode, the SQLite ledger, the
anthropic SDK) runs against both sandboxes in this process, the model API at realistic
speed (latency model × 1.0) and the default Slack pacing (1 post a second per channel).

(a) First visible strategy text: for single runs, the moment the first draft of the strategy
    reaches Slack (its `chat.update`, as the Slack sandbox timed it) against the plan call's
    time to first token and its end (as the Claude sandbox timed them), all from the moment
    the plan request arrived. Reported: draft ÷ time to first token, and how long before the
    plan call ended the strategy was already visible.
(b) chat.update per run: `--burst` commands fired at once from as many channels, every run
    to its end; calls to chat.update in total and per run (drafts apart), the most in any
    60 s window, against Tier 3 (50 a minute per workspace, which the Slack sandbox
    enforces), the 429s the sandbox answered for chat.update, and how late each run's first
    message reaches its final state after its review was posted (the cost of pacing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from blocks.controls import STOP_ACTION
from tests.benchmarks.burst import add_channels, most_in_any_window, run_burst
from tests.harness import Stack, running_stack

QUESTION = "Design a REST API for a social network"
OPUS = "claude-opus-5-5"
TIER3_PER_MIN = 50


async def first_draft(reps: int) -> list[tuple[float, float, float, float]]:
    """(time to first token, first text token, first draft visible, plan call end), seconds
    from the plan request. The answer's text follows the hidden thinking, which the sandbox
    streams at the model's speed: its first token is at TTFT + thinking tokens ÷ speed."""
    rows = []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            async with running_stack(Path(tmp), time_scale=1.0, slack_posts_per_s=1.0) as stack:
                await stack.command(QUESTION)
                await stack.settle()
                plan = next(r for r in stack.claude.requests if r.role == "plan")
                drafts = [
                    c
                    for c in stack.slack.calls_to("chat.update")
                    if "writing the strategy" in c.args.get("text", "")
                ]
                assert plan.first_token is not None and plan.finished is not None and drafts
                thinking = ((plan.usage or {}).get("output_tokens_details") or {}).get(
                    "thinking_tokens", 0
                )
                text_at = plan.first_token + thinking * stack.claude.latency.per_token(OPUS)
                rows.append(
                    (
                        plan.first_token - plan.started,
                        text_at - plan.started,
                        drafts[0].at - plan.started,
                        plan.finished - plan.started,
                    )
                )
    return rows


@dataclass(frozen=True, slots=True)
class Burst:
    updates: int  # chat.update calls Slack accepted
    drafts: int  # of which drafts of the strategy
    window: int  # the most accepted in any 60 s
    refused: int  # chat.update answered 429
    lags: list[float]  # per run: final first message after its review was posted, seconds
    stale: int  # runs whose first message never reached its final state (Stop still there)
    elapsed: float  # seconds from the commands to the last run's end


async def burst(runs: int) -> Burst:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp), time_scale=1.0, slack_posts_per_s=1.0) as stack:
            channels = add_channels(stack, runs, prefix="C0LIVE")
            # 50 runs share 16 call slots: minutes, not seconds.
            elapsed = await run_burst(stack, QUESTION, channels, timeout_s=1800)
            calls = stack.slack.calls_to("chat.update")
            ends = [_lag(stack, c) for c in channels]
    lags = [lag for lag in ends if lag is not None]
    updates = [c for c in calls if c.ok]
    drafts = sum("writing the strategy" in u.args.get("text", "") for u in updates)
    window = most_in_any_window(u.at for u in updates)
    refused = sum(c.status == 429 for c in calls)
    return Burst(len(updates), drafts, window, refused, lags, len(ends) - len(lags), elapsed)


def _lag(stack: Stack, channel: str) -> float | None:
    """Seconds from the run's review reaching Slack to its first message's final edit; None
    if the first message never got there (its Stop button is still on it)."""
    first = stack.slack.messages(channel)[0]
    if STOP_ACTION in json.dumps(first.blocks):
        return None
    top = first.ts
    review = next(
        c
        for c in stack.slack.calls
        if c.method == "chat.postMessage"
        and c.ok
        and c.args.get("channel") == channel
        and "orchestrate_footer" in json.dumps(c.args.get("metadata"))
    )
    final = [
        c
        for c in stack.slack.calls_to("chat.update")
        if c.ok and c.args.get("channel") == channel and c.args.get("ts") == top
    ][-1]
    return final.at - review.at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    rows = asyncio.run(first_draft(args.reps))
    print("(a) first visible strategy text, seconds from the plan request")
    for ttft, text, draft, end in rows:
        print(
            f"    ttft {ttft:5.2f}  first text {text:5.2f}  first draft {draft:5.2f}"
            f"  plan ends {end:5.2f}"
        )
    ratios = [draft / ttft for ttft, _, draft, _ in rows]
    lag = [draft - text for _, text, draft, _ in rows]
    ahead = [end - draft for _, _, draft, end in rows]
    print(f"    draft ÷ ttft: median {statistics.median(ratios):.2f} (max {max(ratios):.2f})")
    print(
        f"    draft − first text token: median {statistics.median(lag):.2f} s (max {max(lag):.2f})"
    )
    print(f"    visible before the plan call ended by: median {statistics.median(ahead):.2f} s")
    if not args.burst:
        return
    result = asyncio.run(burst(args.burst))
    runs = args.burst
    lags = sorted(result.lags)
    p95 = lags[min(len(lags) - 1, round(0.95 * (len(lags) - 1)))]
    print(f"(b) {runs} runs at once, all done in {result.elapsed:.0f} s")
    print(
        f"    chat.update: {result.updates} ({result.updates / runs:.2f} a run), of which "
        f"drafts {result.drafts} ({result.drafts / runs:.2f} a run); most in any 60 s: "
        f"{result.window} (Tier 3: {TIER3_PER_MIN}/min); answered 429: {result.refused}"
    )
    print(
        f"    first message final after the review was posted: p50 "
        f"{statistics.median(lags):.1f} s, p95 {p95:.1f} s, max {lags[-1]:.1f} s; "
        f"never final (still showing Stop): {result.stale} of {runs}"
    )


if __name__ == "__main__":
    main()
