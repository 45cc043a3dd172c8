"""Which bot instances are alive, and the slot each holds.

An instance claims an id at start (`claim`): the lowest slot `instance-<n>` no live instance
holds. That id is its executor id in the run engine, so a restarted instance takes its own
slot back and resumes the runs it left. A live instance beats (`beat`: its row gets a fresh
`heartbeat_at`) every few seconds; `reap`, called by any live instance, forgets an instance
whose heartbeat is older than the TTL, or that ran on this host under a process id that no
longer exists: the run engine then resumes its unfinished runs on a live instance
(`bot.slack.liveness`). A beat that finds its row gone tells the instance it was declared
dead (it was frozen for longer than the TTL) and must act for its runs no more. A run that is
a workflow has no `owner_id` and is interrupted only once older than the longest a run can
live; a run written by an older version, not a workflow, is interrupted with its dead owner.
Times are the instances' own clocks: keep them within a few seconds of each other (NTP).
"""

from __future__ import annotations

import itertools
import os
import socket
from datetime import datetime, timedelta

from bot.ledger.driver import Conn, Driver, now_utc
from bot.ledger.types import LedgerError

ORPHANED = "the instance running it stopped"
SLOT = "instance-"


class Instances:
    """The `instances` table: which instances are alive, and which slot (the run engine's
    executor id) each holds."""

    def __init__(self, db: Driver, *, instance_id: str) -> None:
        self._db = db
        self.id = instance_id
        self.host = socket.gethostname()
        self.pid = os.getpid()

    async def claim(
        self, *, ttl: timedelta, named: str | None = None, now: datetime | None = None
    ) -> str:
        """Take this instance's id: `named` (an operator's choice), else the lowest slot
        `instance-<n>` that no live instance holds. An instance that died on this host (its
        process is gone) or fell silent for `ttl` frees its slot at once: a restarted
        instance takes its own slot back, and with it the runs it left unfinished."""
        moment = now_utc(now)
        at = self._db.to_db_time(moment)
        async with self._db.write(lock_key="orchestrate.reap") as c:
            await self._forget_dead(c, ttl=ttl, moment=moment)
            taken = {str(row[0]) for row in await c.fetch("SELECT id FROM instances")}
            if named is not None:
                if named in taken:
                    raise LedgerError(f"instance id {named!r} is held by a live instance")
                chosen = named
            else:
                chosen = next(f"{SLOT}{n}" for n in itertools.count() if f"{SLOT}{n}" not in taken)
            await c.execute(
                "INSERT INTO instances (id, host, pid, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?)",
                chosen, self.host, self.pid, at, at,
            )  # fmt: skip
        self.id = chosen
        return chosen

    async def beat(self, *, now: datetime | None = None) -> bool:
        """Say this instance is alive; False if it was declared dead meanwhile (its row was
        removed by another instance, which has taken over its runs)."""
        moment = self._db.to_db_time(now_utc(now))
        async with self._db.write() as c:
            changed = await c.execute(
                "UPDATE instances SET heartbeat_at = ? WHERE id = ? AND host = ? AND pid = ?",
                moment, self.id, self.host, self.pid,
            )  # fmt: skip
        return bool(changed)

    async def live(self, *, ttl: timedelta, now: datetime | None = None) -> int:
        """How many instances (this one included) have beaten within `ttl`."""
        return max(1, len(await self.live_ids(ttl=ttl, now=now)))

    async def live_ids(self, *, ttl: timedelta, now: datetime | None = None) -> set[str]:
        """The ids of the instances that have beaten within `ttl`."""
        since = self._db.to_db_time(now_utc(now) - ttl)
        async with self._db.read() as c:
            rows = await c.fetch("SELECT id FROM instances WHERE heartbeat_at >= ?", since)
        return {str(row[0]) for row in rows}

    async def leave(self) -> None:
        """A clean stop: forget this instance (its runs have been drained by now)."""
        async with self._db.write() as c:
            await c.execute(
                "DELETE FROM instances WHERE id = ? AND pid = ? AND host = ?",
                self.id, self.pid, self.host,
            )  # fmt: skip

    async def reap(
        self, *, ttl: timedelta, ownerless_before: datetime, now: datetime | None = None
    ) -> list[tuple[str, str]]:
        """Forget dead instances. A run that is a workflow has no owner (the engine resumes
        it elsewhere); it is interrupted only once older than any run can live (it truly
        cannot go on). A run that is not (a follow-up's one call) is interrupted with its
        dead owner. Returns the threads (channel, ts) of the runs so closed."""
        moment = now_utc(now)
        async with self._db.write(lock_key="orchestrate.reap") as c:
            await self._forget_dead(c, ttl=ttl, moment=moment)
            closed = await c.fetch(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
                " WHERE status = 'running' AND CASE WHEN owner_id IS NULL THEN started_at < ?"
                " ELSE owner_id <> ? AND owner_id NOT IN (SELECT id FROM instances) END"
                " RETURNING thread_channel, thread_ts",
                self._db.to_db_time(moment), ORPHANED,
                self._db.to_db_time(ownerless_before), self.id,
            )  # fmt: skip
        return [(str(channel), str(ts)) for channel, ts in closed if ts is not None]

    async def _forget_dead(self, c: Conn, *, ttl: timedelta, moment: datetime) -> None:
        rows = await c.fetch("SELECT id, pid FROM instances WHERE host = ?", self.host)
        # Not this process's (its own row, another front end's in the same process: alive).
        gone = [str(i) for i, pid in rows if int(pid) != self.pid and not _alive(int(pid))]
        for instance in gone:
            await c.execute("DELETE FROM instances WHERE id = ?", instance)
        await c.execute(
            "DELETE FROM instances WHERE heartbeat_at < ? AND NOT (id = ? AND pid = ?)",
            self._db.to_db_time(moment - ttl), self.id, self.pid,
        )  # fmt: skip


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
