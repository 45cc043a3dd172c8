"""The heartbeat loop outlives any one failure: were it to stop, this instance would look dead
and its siblings would interrupt its live runs.

The ledger here is a stand-in that fails the way a bug would (no wire produces that); the
ledger's real beat and reap are tested in the conformance suite and with real processes in
`tests/cli/test_instances.py`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import LedgerUnavailable
from bot.slack.lease import Lease
from bot.slack.liveness import Liveness
from bot.slack.poster import Poster


class FlakyInstances:
    id = "instance-1"

    def __init__(self) -> None:
        self.beats = 0
        self.reaps = 0
        self.left = False

    async def beat(self, *, now: datetime | None = None) -> bool:
        self.beats += 1
        if self.beats == 3:
            raise LedgerUnavailable("the database went away")
        return True  # its row is there: not declared dead

    async def reap(
        self, *, ttl: timedelta, ownerless_before: datetime, now: datetime | None = None
    ) -> list[tuple[str, str]]:
        self.reaps += 1
        if self.reaps == 2:
            raise RuntimeError("a bug in the reap")
        return []

    async def live(self, *, ttl: timedelta, now: datetime | None = None) -> int:
        return 1

    async def leave(self) -> None:
        self.left = True


class CountedInstances(FlakyInstances):
    """Beats without failing; `alive` instances answer the count."""

    def __init__(self, alive: int) -> None:
        super().__init__()
        self.alive = alive

    async def beat(self, *, now: datetime | None = None) -> bool:
        self.beats += 1
        return True

    async def reap(
        self, *, ttl: timedelta, ownerless_before: datetime, now: datetime | None = None
    ) -> list[tuple[str, str]]:
        return []

    async def live(self, *, ttl: timedelta, now: datetime | None = None) -> int:
        return self.alive


def idle_poster() -> Poster:
    """A poster that is never asked to call Slack (no thread is reported here)."""
    return Poster(AsyncWebClient(token="xoxb-unused"))


async def test_the_heartbeat_goes_on_after_an_outage_and_a_failing_reap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    instances = FlakyInstances()
    liveness = Liveness(
        instances=instances, poster=idle_poster(), interval_s=0.01, ttl_s=0.05,
        longest_run=timedelta(hours=1), lease=Lease(ttl_s=0.05, margin_s=0.01),
    )  # fmt: skip

    await liveness.start()
    await asyncio.sleep(0.5)
    await liveness.stop()

    assert instances.beats > 10 and instances.reaps > 2
    assert instances.left
    assert "a bug in the reap" in caplog.text
    assert "the ledger is unavailable" in caplog.text


async def test_each_instance_paces_chat_update_at_its_share_of_the_workspace_limit() -> None:
    instances = CountedInstances(alive=2)
    poster = idle_poster()
    full = poster.updates.limit
    liveness = Liveness(
        instances=instances, poster=poster, interval_s=0.01, ttl_s=0.05,
        longest_run=timedelta(hours=1), lease=Lease(ttl_s=0.05, margin_s=0.01),
    )  # fmt: skip
    await liveness.start()
    # Joining a live instance: half the rate, and no edit before the other has counted it.
    assert poster.updates.rate == pytest.approx(full.rate / 2)
    assert poster.updates.offer("C1", "1.0", blocks.error_message("draft")) is None
    instances.alive = 4  # two more came: the next beat takes a quarter
    async with asyncio.timeout(5):
        while poster.updates.rate != pytest.approx(full.rate / 4):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    instances.alive = 1
    async with asyncio.timeout(5):
        while poster.updates.rate != pytest.approx(full.rate):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await liveness.stop()
