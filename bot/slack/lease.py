"""This instance's lease on its runs: held while its heartbeat lands in the ledger.

A live instance takes over the runs of one whose heartbeat is older than the TTL. An
instance that was frozen (SIGSTOP, a paused VM) for longer than that may wake up with
work queued: a model call about to start, an edit of a message. The lease fences it: it
is valid for `ttl - margin` after the last heartbeat that landed, measured on this
process's monotonic clock (which runs on while the process is frozen). Once it has
lapsed, every model call and every Slack write of a run waits for the next heartbeat; if
that heartbeat finds this instance declared dead (its row gone), the lease is lost for
good and they are refused (`LeaseLost`): what the instance was doing belongs to another.
"""

from __future__ import annotations

import asyncio
import time

from bot.slack.engine import LeaseLost


class Lease:
    def __init__(self, *, ttl_s: float, margin_s: float) -> None:
        self._valid_for = max(0.1, ttl_s - margin_s)
        self._until = float("-inf")
        self.lost = False  # for good: a heartbeat found this instance declared dead
        self._renewed = asyncio.Event()

    def renew(self, *, at: float) -> None:
        """A heartbeat landed (its write started at `at`, monotonic)."""
        self._until = at + self._valid_for
        self._renewed.set()
        self._renewed = asyncio.Event()

    def lose(self) -> None:
        """A heartbeat found this instance declared dead."""
        self.lost = True
        self._renewed.set()

    async def check(self) -> None:
        """Return while the lease holds; wait for the next heartbeat if it has lapsed;
        raise `LeaseLost` if this instance was declared dead."""
        while self.lost or time.monotonic() >= self._until:
            if self.lost:
                raise LeaseLost("this instance was declared dead; its runs were taken over")
            await self._renewed.wait()
