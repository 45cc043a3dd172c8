"""A run's writes that survive an outage: written now, or kept and retried until they land.

`RunWriter` is what the run owner writes through (`RunLedger`). `reserve_run` (and the
reads) go straight to the database: a run that cannot be admitted must not start. A call's
record, a run's end, its thread and its strategy are written the moment they are handed
over; if the database is unavailable (`LedgerUnavailable`, or no answer within
`WRITE_TIMEOUT_S`), the write is kept in memory, the caller goes on (a run finishes for its
user whatever the ledger's state), and one owned task retries the backlog in order with
capped exponential backoff until it lands. While a backlog exists new writes join it, so a
dead database costs a run no waiting. At `close`, what still has not landed after one last
try goes to the spill file (`bot.ledger.spill`), which `open` replays. Call records carry a
key, so a write whose fate is unknown (the connection dropped during COMMIT) is simply sent
again. A write the database refuses for another reason (a bug) is logged whole at ERROR,
never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections import deque
from datetime import datetime
from decimal import Decimal

from bot.core.models import Strategy
from bot.core.usage import CallRecord
from bot.ledger.budgets import Limits
from bot.ledger.driver import now_utc
from bot.ledger.runs import RunBook
from bot.ledger.spill import (
    CallWrite,
    PendingWrite,
    RunEnd,
    SpillFile,
    StrategySet,
    ThreadSet,
    for_log,
    to_json,
)
from bot.ledger.types import (
    BudgetRefusal,
    BudgetStop,
    CallHold,
    EndStatus,
    FollowUpTotals,
    KeptStrategy,
    LedgerError,
    LedgerUnavailable,
    Reservation,
    RunInfo,
)

log = logging.getLogger(__name__)
WRITE_TIMEOUT_S = 10.0
FIRST_RETRY_S = 0.25
MAX_RETRY_S = 5.0
FINAL_FLUSH_S = 5.0


class RunWriter:
    """The run owner's view of the ledger, with writes that are kept until they land."""

    def __init__(self, book: RunBook, *, spill: SpillFile) -> None:
        self._book = book
        self._spill = spill
        self._backlog: deque[PendingWrite] = deque()
        self._flusher: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Writes held because the database could not take them yet."""
        return len(self._backlog)

    async def reserve_run(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        question: str,
        worst_case_usd: Decimal,
        user_budget: Decimal | None,
        workspace_budget: Decimal | None,
        parent_run_id: str | None = None,
        channel_budget: Decimal | None = None,
        models: str = "",
        now: datetime | None = None,
        run_id: str | None = None,
    ) -> Reservation | BudgetRefusal:
        return await self._book.reserve_run(
            team_id=team_id, channel_id=channel_id, user_id=user_id, question=question,
            worst_case_usd=worst_case_usd, user_budget=user_budget,
            workspace_budget=workspace_budget, parent_run_id=parent_run_id,
            channel_budget=channel_budget, models=models, now=now, run_id=run_id,
        )  # fmt: skip

    async def reserve_call(
        self, run_id: str, *, worst_case_usd: Decimal, limits: Limits
    ) -> CallHold | BudgetStop:
        """Hold one call's worst case (`RunBook.reserve_call`). During an outage the hold
        cannot be taken (and held call records are not in the database yet): the call goes
        on unheld, as the run's writes do, and the outage is logged."""
        try:
            return await asyncio.wait_for(
                self._book.reserve_call(run_id, worst_case_usd=worst_case_usd, limits=limits),
                WRITE_TIMEOUT_S,
            )
        except (LedgerUnavailable, TimeoutError) as exc:
            log.warning("budget hold for run %s skipped, the ledger is unavailable: %s",
                        run_id, exc)  # fmt: skip
            return CallHold(run_id, None, Decimal(0))

    async def release_call(self, hold: CallHold) -> None:
        """Give back a hold; if the ledger cannot be reached, the run's end gives it back."""
        try:
            await asyncio.wait_for(self._book.release_call(hold), WRITE_TIMEOUT_S)
        except (LedgerUnavailable, TimeoutError) as exc:
            log.warning("budget hold of run %s not released now: %s", hold.run_id, exc)

    async def get_run(self, run_id: str) -> RunInfo | None:
        return await self._book.get_run(run_id)

    async def followups(self, run_id: str) -> FollowUpTotals:
        return await self._book.followups(run_id)

    async def record_call(
        self,
        run_id: str,
        call: CallRecord,
        *,
        key: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """True if written now; False if kept to be retried (it will land, or be spilled)."""
        return await self._write(CallWrite(key or str(uuid.uuid4()), run_id, call, now_utc(now)))

    async def finish_run(
        self,
        run_id: str,
        status: EndStatus,
        *,
        elapsed_s: float,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None:
        await self._write(RunEnd(run_id, status, elapsed_s, error, now_utc(now)))

    async def set_thread(self, run_id: str, channel: str, ts: str) -> None:
        await self._write(ThreadSet(run_id, channel, ts))

    async def record_strategy(
        self, run_id: str, strategy: Strategy, *, now: datetime | None = None
    ) -> None:
        # Dropped here rather than by the book, so that with questions not kept the text is
        # never held in memory, spilled to disk or logged through an outage either.
        if self._book.stores_questions:
            await self._write(StrategySet(run_id, strategy, now_utc(now)))

    async def kept_strategy(self, run_id: str) -> KeptStrategy | None:
        return await self._book.kept_strategy(run_id)

    async def replay_spilled(self) -> int:
        """Write what an earlier process spilled; returns how many landed (the rest stay)."""
        landed = 0
        with self._spill.replaying() as writes:
            for write in list(writes):
                try:
                    await self._apply(write)
                except LedgerUnavailable:
                    break  # the rest stay in the file for the next start
                except LedgerError as exc:
                    # A write the ledger refuses (a run it does not know): set aside, logged.
                    log.error("a spilled write was refused (%s): %s", exc, for_log(write))
                    self._spill.reject([(json.dumps(to_json(write)) + "\n").encode()])
                    writes.remove(write)
                    continue
                writes.remove(write)
                landed += 1
        if landed:
            log.info("replayed %d ledger writes from %s", landed, self._spill.path)
        return landed

    async def flushed(self) -> None:
        """Return once every held write has landed (tests and shutdown wait on this)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        """One last try for what is held, then the spill file for what still cannot land."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FINAL_FLUSH_S):
                while self._backlog and await self._try(self._backlog[0]):
                    self._backlog.popleft()
        left, self._backlog = list(self._backlog), deque()
        if left:
            self._spill_or_log(left)

    async def _write(self, write: PendingWrite) -> bool:
        if self._backlog:  # the database is known to be down: do not make the run wait
            self._hold(write)
            return False
        try:
            landed = await self._try(write)
        except asyncio.CancelledError:
            self._hold(write)  # its fate is unknown: sending it again is harmless
            raise
        if not landed:
            self._hold(write)
        return landed

    async def _try(self, write: PendingWrite) -> bool:
        """Write once: True if it landed (or needs no retry), False if the database is down."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await self._apply(write)
        except (LedgerUnavailable, TimeoutError) as exc:
            log.warning("ledger unavailable, holding the write: %s", exc)
            return False
        except Exception:
            # Not an outage, so retrying cannot help: keep the record in the log instead.
            log.exception("ledger refused a write; the record: %s", for_log(write))
        return True

    async def _apply(self, write: PendingWrite) -> None:
        match write:
            case CallWrite(key=key, run_id=run_id, call=call, at=at):
                await self._book.record_call(run_id, call, key=key, now=at)
            case RunEnd(run_id=run_id, status=status, elapsed_s=elapsed, error=error, at=at):
                await self._book.finish_run(run_id, status, elapsed_s=elapsed, error=error, now=at)
            case ThreadSet(run_id=run_id, channel=channel, ts=ts):
                await self._book.set_thread(run_id, channel, ts)
            case StrategySet(run_id=run_id, strategy=strategy, at=at):
                await self._book.record_strategy(run_id, strategy, now=at)

    def _hold(self, write: PendingWrite) -> None:
        self._backlog.append(write)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="ledger-flush")

    async def _flush(self) -> None:
        delay = FIRST_RETRY_S
        try:
            while self._backlog:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                while self._backlog and await self._try(self._backlog[0]):
                    self._backlog.popleft()
                    delay = FIRST_RETRY_S
                delay = min(delay * 2, MAX_RETRY_S)
            log.info("ledger reachable again; every held write has landed")
        finally:
            self._flusher = None

    def _spill_or_log(self, writes: list[PendingWrite]) -> None:
        try:
            self._spill.append(writes)
        except OSError:
            # The last resort: the records in the log, where an operator can replay them.
            for write in writes:
                log.error("ledger write lost to disk, kept here: %s", for_log(write))
            raise
        log.warning(
            "%d ledger writes spilled to %s for the next start", len(writes), self._spill.path
        )
