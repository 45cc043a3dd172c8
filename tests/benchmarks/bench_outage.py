"""How a run in flight rides out its database going away (issue 19): PostgreSQL stopped for
a few seconds while examples are being written, then started again. Prints, per outage
length, how long after the database came back the run's thread was complete, and whether
any call was made twice.

    .venv/bin/python -m tests.benchmarks.bench_outage [--outages 3,10,30]

Needs Debian's PostgreSQL (tests/ledger/throwaway_pg.py starts a cluster of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from tests.harness import running_stack
from tests.ledger.throwaway_pg import throwaway_postgres

QUESTION = "Design a REST API for a social network"


async def one(outage_s: float) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            throwaway_postgres() as pg,
            running_stack(Path(tmp), database_url=pg.url) as stack,
        ):
            stack.claude.add_rule(role="example", delay_s=1.0)
            await stack.command(QUESTION)
            while not any(r.role == "example" for r in stack.claude.messages()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await pg.stop()  # type: ignore[attr-defined]
            await asyncio.sleep(outage_s)
            await pg.start()  # type: ignore[attr-defined]
            back = time.monotonic()
            while not any("Review by" in r.text for r in stack.thread()[1]):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            took = time.monotonic() - back
            await stack.services.runs.wait_idle()
            asked = [json.dumps(r.body["messages"]) for r in stack.claude.messages()]
            return took, len(asked), len(asked) - len(set(asked))


async def main(outages: list[float]) -> None:
    print("| outage | database back → thread complete | model calls | calls made twice |")
    print("|---|---|---|---|")
    for outage in outages:
        took, calls, twice = await one(outage)
        print(f"| {outage:g} s | {took:.1f} s | {calls} | {twice} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="3,10,30")
    args = parser.parse_args()
    asyncio.run(main([float(x) for x in args.outages.split(",")]))
