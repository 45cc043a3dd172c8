"""This instance's heartbeat and lease, and the runs of dead instances resumed here.

`Liveness` beats in the ledger every `ORCHESTRATE_HEARTBEAT_S`; each beat that lands renews
this instance's lease (`bot.slack.lease`), and a beat that finds this instance declared dead
loses it for good (a serving process then stops). Each time it also asks the ledger to
reap: an instance silent for `ORCHESTRATE_INSTANCE_TTL_S` (or gone from this host) is
forgotten, and the unfinished workflows of every executor that is not alive are resumed
here (`Engine.recover`; DBOS's re-enqueue admits one runner, so two instances
taking over at once run each once). With the defaults (3 s, 12 s) a dead instance's runs
go on within about 15 s. A run that truly cannot go on (older than any run lives) becomes
`interrupted`, and this instance says so in its thread. An instance that has just regained
the database waits one TTL before reaping, so that its siblings, cut off by the same outage,
have beaten again first. The loop is a task this object owns: `start_beating` beats and
starts it, `start` then reaps once; `stop` ends it and removes this instance's row.

Each beat also counts the live instances and gives this one its share of `chat.update`'s
workspace limit (`Poster.updates.share`): Slack counts edits per workspace, and the
instances of one deployment share it. A count per beat, not per edit (no database round
trip per edit). An instance that joins others is counted by them within a heartbeat, and
until then they spend their larger share: so it makes no edit for its first heartbeat.
With two instances and the defaults, the minute around a join then holds at most about
49 edits (the first's burst of 10 and 10 s at its full rate, then both at half). An
instance that dies silently keeps its share reserved until its heartbeat is older than the
TTL (the others are slower for that long, never faster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import blocks
from bot.ledger import InstanceLedger, LedgerError
from bot.slack.engine import Engine
from bot.slack.lease import Lease
from bot.slack.poster import Poster, describe

log = logging.getLogger(__name__)


class Liveness:
    """Beats for this instance and closes dead instances' runs, while the bot serves."""

    def __init__(
        self,
        *,
        instances: InstanceLedger,
        poster: Poster,
        interval_s: float,
        ttl_s: float,
        longest_run: timedelta,
        lease: Lease,
        engine: Engine | None = None,
        on_lost: Callable[[], object] | None = None,
    ) -> None:
        self._instances = instances
        self._engine = engine
        self.lease = lease
        self._on_lost = on_lost
        self._poster = poster
        self._interval_s = interval_s
        self._ttl = timedelta(seconds=ttl_s)
        self._longest_run = longest_run
        self._task: asyncio.Task[None] | None = None
        self._connected_since: float | None = None

    async def start_beating(self) -> None:
        """Beat, then keep beating in the background."""
        await self._beat()
        await self._share(quiet_s=self._interval_s)
        self._connected_since = time.monotonic() - self._ttl.total_seconds()
        self._task = asyncio.create_task(self._loop(), name="liveness")

    async def start(self) -> None:
        """Beat (if not yet), then resume what dead instances left, or close it."""
        if self._task is None:
            await self.start_beating()
        await self.reap()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._instances.leave()
        except LedgerError as exc:
            log.warning("could not remove this instance from the ledger: %s", exc)

    async def _beat(self) -> None:
        """One heartbeat; the lease runs from when it was sent. A beat that finds this
        instance declared dead loses the lease for good."""
        sent = time.monotonic()
        if await self._instances.beat():
            self.lease.renew(at=sent)
            return
        log.error(
            "this instance was declared dead (silent for longer than %.0f s): its runs were "
            "taken over by another; it acts for them no more",
            self._ttl.total_seconds(),
        )
        self.lease.lose()
        if self._on_lost is not None:
            self._on_lost()

    async def reap(self) -> None:
        """Forget dead instances and resume their runs here; close the runs that cannot go
        on and say so in their threads."""
        now = datetime.now(UTC)
        threads = await self._instances.reap(
            ttl=self._ttl, ownerless_before=now - self._longest_run, now=now
        )
        if self._engine is not None:
            await self._take_over(self._engine)
        if threads:
            log.warning("%d runs of stopped instances are interrupted", len(threads))
        for channel, ts in threads:
            try:
                await self._poster.post(channel, blocks.interrupted_message(), thread_ts=ts)
            except Exception as exc:  # Slack refusing or unreachable: the run is closed anyway
                log.warning("could not mark thread %s interrupted: %s", ts, describe(exc))

    async def _take_over(self, engine: Engine) -> None:
        """Resume, here, the unfinished runs of every instance that is not alive."""
        live = await self._instances.live_ids(ttl=self._ttl)
        orphans = sorted(await engine.pending_executors() - live - {self._instances.id})
        if not orphans:
            return
        if taken := await engine.recover(orphans):
            log.warning(
                "took over %d unfinished runs of stopped instances (%s)", taken, ", ".join(orphans)
            )

    async def _share(self, *, quiet_s: float = 0.0) -> None:
        self._poster.updates.share(await self._instances.live(ttl=self._ttl), quiet_s=quiet_s)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._tick()
            except LedgerError as exc:
                self._connected_since = None
                log.warning("heartbeat failed, the ledger is unavailable: %s", exc)
            except Exception:
                # The loop must outlive any one failure: if it stopped, this instance would
                # look dead and its live runs would be interrupted by its siblings.
                log.exception("liveness tick failed")

    async def _tick(self) -> None:
        if self.lease.lost:
            return
        await self._beat()
        await self._share()
        if self._connected_since is None:
            self._connected_since = time.monotonic()
        # Just back from an outage: siblings that lost the database too have not beaten yet.
        if time.monotonic() - self._connected_since < self._ttl.total_seconds():
            return
        await self.reap()
