"""Conversation benchmark: how fast a mention is answered, and what a follow-up costs.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_conversation              # about 1.5 minutes
    .venv/bin/python -m tests.benchmarks.bench_conversation --reps 2 --time-scale 0.3

The real app runs in Socket Mode against both sandboxes in this process (`tests.harness`),
with the SQLite ledger in a temporary directory, the default posting pace (1 post a second
per channel) and the Claude stand-in's latency model at `--time-scale` (1.0: real speed).
Times come from the sandboxes' own records on one monotonic clock: when the mention was
sent, when the Web API call that posted the answer arrived, and when the model call that
wrote it started and finished.

(a) mention → first answer posted ÷ that answer's model time, target ≤ 1.10:
    - a question mentioned in a channel: the strategy shown in its thread (the chat.update
      of the run's first reply) ÷ the plan call;
    - a follow-up question in a run's thread: the answer posted ÷ the review model's call
      (the thread is read, the follow-up admitted and recorded before the reply);
    - a follow-up redoing one component: the example posted ÷ the examples model's call.
(b) cost of a follow-up against re-running the whole question, from the ledger: the run,
    a follow-up question (review model), a component redone (examples model).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from bot.sandbox.claude.rules import RecordedRequest
from bot.sandbox.slack.server import Message
from tests.harness import Stack, running_stack

QUESTION = "Design a REST API for a social network"
CHANNEL = "C0GENERAL"


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(120):
        while not condition():  # noqa: ASYNC110  # the sandbox has no notification for this
            await asyncio.sleep(0.005)


def call_after(stack: Stack, since: float, *, role: str) -> RecordedRequest | None:
    found = [
        r for r in stack.claude.requests if r.role == role and r.started >= since and r.finished
    ]
    return found[0] if found else None


def posted_after(stack: Stack, since: float, method: str, thread_ts: str) -> float | None:
    for call in stack.slack.calls_to(method):
        args = call.args
        if call.at >= since and call.ok and thread_ts in (args.get("thread_ts"), args.get("ts")):
            return call.at
    return None


def marks(stack: Stack, thread_ts: str, kind: str) -> list[Message]:
    messages = [
        stack.slack.workspace.find(CHANNEL, thread_ts),
        *stack.slack.replies(CHANNEL, thread_ts),
    ]
    return [m for m in messages if m and m.metadata and m.metadata["event_type"] == kind]


async def mention_run(stack: Stack) -> tuple[float, str]:
    """(answer ÷ model time, run id) for a question mentioned in the channel."""
    sent = time.monotonic()
    asked, _ = await stack.slack.mention(text=f"@orchestrate {QUESTION}")
    await until(lambda: bool(marks(stack, asked.ts, "orchestrate_footer")))
    await stack.services.runs.wait_idle()
    (top,) = marks(stack, asked.ts, "orchestrate_run")
    plan = call_after(stack, sent, role="plan")
    assert plan is not None and plan.finished is not None
    shown = next(
        c.at
        for c in stack.slack.calls_to("chat.update")
        if c.at >= sent and c.args.get("ts") == top.ts
    )
    return (shown - sent) / (plan.finished - plan.started), str(
        top.metadata["event_payload"]["run_id"] if top.metadata else ""
    )


async def follow_up(stack: Stack, root: str, text: str, *, role: str) -> float:
    """Answer posted ÷ the model call that wrote it, for one follow-up in `root`."""
    before = len(stack.slack.replies(CHANNEL, root))
    sent = time.monotonic()
    await stack.slack.mention(text=f"@orchestrate {text}", thread_ts=root)
    await until(lambda: len(stack.slack.replies(CHANNEL, root)) > before + 1)
    await stack.services.runs.wait_idle()
    call = call_after(stack, sent, role=role)
    posted = posted_after(stack, sent, "chat.postMessage", root)
    assert call is not None and call.finished is not None and posted is not None
    return (posted - sent) / (call.finished - call.started)


async def bench(reps: int, time_scale: float) -> None:
    started: list[float] = []
    answers: list[float] = []
    redos: list[float] = []
    run_costs: list[Decimal] = []
    answer_costs: list[Decimal] = []
    redo_costs: list[Decimal] = []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            async with running_stack(
                Path(tmp), time_scale=time_scale, slack_posts_per_s=1.0, call_timeout_s=120.0
            ) as stack:
                ratio, run_id = await mention_run(stack)
                started.append(ratio)
                root = stack.slack.messages(CHANNEL)[-1].ts
                ledger = stack.services.ledger.runs
                run = await ledger.get_run(run_id)
                assert run is not None
                run_costs.append(run.cost_usd)
                answers.append(await follow_up(stack, root, "what are we missing?", role="answer"))
                after_answer = (await ledger.followups(run_id)).cost_usd
                answer_costs.append(after_answer)
                redos.append(await follow_up(stack, root, "redo 2 in Go", role="example"))
                redo_costs.append((await ledger.followups(run_id)).cost_usd - after_answer)
    print(f"time scale {time_scale}, {reps} repetitions (median, then each)")
    print("(a) mention → first answer posted ÷ that answer's model time (target ≤ 1.10)")
    for label, ratios in (
        ("mention in a channel → strategy shown ÷ plan call", started),
        ("follow-up question → answer posted ÷ review call", answers),
        ("follow-up redo → example posted ÷ examples call", redos),
    ):
        each = ", ".join(f"{r:.3f}" for r in ratios)
        print(f"  {label}: {statistics.median(ratios):.3f}  [{each}]")
    print("(b) cost of a follow-up vs re-running the whole question (ledger, list prices)")
    run_cost = statistics.median(run_costs)
    for label, costs in (("follow-up question", answer_costs), ("component redone", redo_costs)):
        cost = statistics.median(costs)
        print(f"  {label}: ${cost:.6f} = {100 * cost / run_cost:.1f}% of the run's ${run_cost:.6f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(bench(args.reps, args.time_scale))


if __name__ == "__main__":
    main()
