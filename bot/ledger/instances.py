"""Which bot instances are alive, and closing the runs of those that are not.

Every run row names the instance that owns it (`runs.owner_id`). A live instance beats
(`beat`: its row in `instances` gets a fresh `heartbeat_at`) every few seconds; `reap`,
called by any live instance, takes an instance whose heartbeat is older than the TTL, or
that ran on this host under a process id that no longer exists, as dead: its runs still
`running` become `interrupted` (which releases their reservations) and their threads are
returned, so the reaper can say so in each. The reap is one locked transaction whose UPDATE
only takes rows still `running`, so of several reapers exactly one closes (and reports) each
run. A starting instance never touches runs whose owner beats. Runs written before owners
were recorded (no `owner_id`) are reaped only once older than the longest a run can live.
Times are the instances' own clocks: keep them within a few seconds of each other (NTP).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from bot.ledger.driver import Driver, now_utc

ORPHANED = "the instance running it stopped"


class Instances:
    """The `instances` table, and the reaping of dead instances' runs."""

    def __init__(self, db: Driver, *, instance_id: str) -> None:
        self._db = db
        self.id = instance_id
        self.host = socket.gethostname()
        self.pid = os.getpid()

    async def beat(self, *, now: datetime | None = None) -> None:
        """Say this instance is alive (registering it on the first beat)."""
        moment = self._db.to_db_time(now_utc(now))
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO instances (id, host, pid, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                self.id, self.host, self.pid, moment, moment,
            )  # fmt: skip

    async def live(self, *, ttl: timedelta, now: datetime | None = None) -> int:
        """How many instances (this one included) have beaten within `ttl`."""
        since = self._db.to_db_time(now_utc(now) - ttl)
        async with self._db.read() as c:
            rows = await c.fetch("SELECT COUNT(*) FROM instances WHERE heartbeat_at >= ?", since)
        return max(1, int(rows[0][0]))

    async def leave(self) -> None:
        """A clean stop: forget this instance (its runs have been drained by now)."""
        async with self._db.write() as c:
            await c.execute("DELETE FROM instances WHERE id = ?", self.id)

    async def reap(
        self, *, ttl: timedelta, ownerless_before: datetime, now: datetime | None = None
    ) -> list[tuple[str, str]]:
        """Interrupt the runs of dead instances; the threads (channel, ts) of those closed."""
        moment = now_utc(now)
        async with self._db.write(lock_key="orchestrate.reap") as c:
            rows = await c.fetch(
                "SELECT id, pid FROM instances WHERE host = ? AND id <> ?", self.host, self.id
            )
            gone = [str(i) for i, pid in rows if int(pid) != self.pid and not _alive(int(pid))]
            for instance in gone:
                await c.execute("DELETE FROM instances WHERE id = ?", instance)
            await c.execute(
                "DELETE FROM instances WHERE heartbeat_at < ? AND id <> ?",
                self._db.to_db_time(moment - ttl),
                self.id,
            )
            closed = await c.fetch(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
                " WHERE status = 'running' AND CASE WHEN owner_id IS NULL THEN started_at < ?"
                " ELSE owner_id <> ? AND owner_id NOT IN (SELECT id FROM instances) END"
                " RETURNING thread_channel, thread_ts",
                self._db.to_db_time(moment), ORPHANED,
                self._db.to_db_time(ownerless_before), self.id,
            )  # fmt: skip
        return [(str(channel), str(ts)) for channel, ts in closed if ts is not None]


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
