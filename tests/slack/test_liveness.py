"""The heartbeat loop outlives any one failure: were it to stop, this instance would look dead
and its siblings would interrupt its live runs.

The ledger here is a stand-in that fails the way a bug would (no wire produces that); the
ledger's real beat and reap are tested in the conformance suite and with real processes in
`tests/cli/test_instances.py`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.ledger import LedgerUnavailable
from bot.slack.liveness import Liveness


class FlakyInstances:
    id = "instance-1"

    def __init__(self) -> None:
        self.beats = 0
        self.reaps = 0
        self.left = False

    async def beat(self, *, now: datetime | None = None) -> None:
        self.beats += 1
        if self.beats == 3:
            raise LedgerUnavailable("the database went away")

    async def reap(
        self, *, ttl: timedelta, ownerless_before: datetime, now: datetime | None = None
    ) -> list[tuple[str, str]]:
        self.reaps += 1
        if self.reaps == 2:
            raise RuntimeError("a bug in the reap")
        return []

    async def leave(self) -> None:
        self.left = True


async def test_the_heartbeat_goes_on_after_an_outage_and_a_failing_reap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    instances = FlakyInstances()
    poster: Any = None  # no thread is ever reported, so nothing is posted
    liveness = Liveness(
        instances=instances, poster=poster, interval_s=0.01, ttl_s=0.05,
        longest_run=timedelta(hours=1),
    )  # fmt: skip

    await liveness.start()
    await asyncio.sleep(0.5)
    await liveness.stop()

    assert instances.beats > 10 and instances.reaps > 2
    assert instances.left
    assert "a bug in the reap" in caplog.text
    assert "the ledger is unavailable" in caplog.text
