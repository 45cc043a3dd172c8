"""A separate OS process holding a ledger, for the crash and cross-process race tests.

Run as `python -m tests.ledger.ledger_worker MODE URL [args…]` from the repository root:

* `crash URL` records two calls of one run, prints `RECORDED <run_id>`, then waits to be
  killed (the test sends SIGKILL).
* `reserve URL N CONCURRENCY WORST BUDGET` prints `READY`, waits for `GO` on stdin so that
  sibling workers start together, makes N reservations (CONCURRENCY at a time)
  against a workspace budget, and prints `ACCEPTED <count>`.
* `claim URL` prints `READY`, waits for `GO`, claims this month's 80% alert, prints
  `CLAIMED True|False`.
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import Ledger, Reservation, open_ledger

TEAM = "T-race"


def say(line: str) -> None:
    print(line, flush=True)


def plan_call() -> CallRecord:
    return CallRecord(
        role="plan",
        model="claude-opus-5-5",
        usage=TokenUsage(input_tokens=1_000, output_tokens=2_000),
        cost_usd=Decimal("0.044"),
        latency_s=0.5,
        outcome="ok",
    )


async def crash(ledger: Ledger) -> None:
    await ledger.instances.beat()  # a serving instance, as far as the ledger can tell
    run_id = await ledger.runs.start_run(team_id="T1", channel_id="C1", user_id="U1", question="q")
    await ledger.runs.record_call(run_id, plan_call())
    await ledger.runs.record_call(run_id, plan_call())
    say(f"RECORDED {run_id}")
    await asyncio.sleep(3600)


async def wait_for_go() -> None:
    say("READY")
    # The parent writes GO to every worker at once, so that they start together.
    if (await asyncio.to_thread(sys.stdin.readline)).strip() != "GO":
        raise SystemExit("expected GO on stdin")


async def reserve(ledger: Ledger, n: int, concurrency: int, worst: Decimal, budget: Decimal) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def attempt(i: int) -> bool:
        async with gate:
            outcome = await ledger.runs.reserve_run(
                team_id=TEAM,
                channel_id="C1",
                user_id=f"U{i % 3}",
                question="q",
                worst_case_usd=worst,
                user_budget=None,
                workspace_budget=budget,
            )
            return isinstance(outcome, Reservation)

    return sum(await asyncio.gather(*(attempt(i) for i in range(n))))


async def main(mode: str, url: str, args: list[str]) -> None:
    async with open_ledger(url) as ledger:
        if mode == "crash":
            await crash(ledger)
        elif mode == "reserve":
            await wait_for_go()
            n, concurrency = int(args[0]), int(args[1])
            accepted = await reserve(ledger, n, concurrency, Decimal(args[2]), Decimal(args[3]))
            say(f"ACCEPTED {accepted}")
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
