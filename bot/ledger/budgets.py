"""Budgets: what counts against a budget, the admission check, the per-call holds, and month
spend.

`Budgets.refusal` is the check `RunBook.reserve_run` makes inside its locked transaction: a
user's UTC day and a workspace's calendar month count every run's recorded cost, plus, for a
run still `running` or with unpriced calls, the part of its reservation above its cost so far
(its true cost is not known yet). `reserve_call` holds each model call's worst case before it
starts, under the same per-team lock, against the recorded spend and the other calls in
flight; the call's record settles the hold (`RunBook.record_call` deletes it in the same
transaction) and `release_call` or the run's end gives it back. `workspace_month_spent` is
the month's recorded cost (for the 80% alert, sent once per team, month and threshold by
its workflow's id). Refusals come back as data (`BudgetRefusal`, `BudgetStop`); `blocks/`
words them.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.ledger import periods
from bot.ledger.driver import Conn, Driver, now_utc, time_scope
from bot.ledger.types import (
    BudgetName,
    BudgetRefusal,
    BudgetStop,
    CallHold,
    LedgerError,
    from_nanos,
    to_nanos,
)

# A reservation follows the 95th percentile of the last runs of the same models once there
# are enough of them to say something; before that, the worst case.
HISTORY_RUNS = 100
MIN_HISTORY = 5
PERCENTILE = 95


@dataclass(frozen=True, slots=True)
class Held:
    """What counts against a budget in a window: calls' cost, and reservations on top."""

    spent_nanos: int
    held_nanos: int


@dataclass(frozen=True, slots=True)
class Limits:
    """The budgets a run is admitted under (None: no such budget)."""

    user_daily: Decimal | None
    workspace_monthly: Decimal | None
    channel_monthly: Decimal | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.user_daily, self.workspace_monthly,
                                            self.channel_monthly))  # fmt: skip


Window = tuple[datetime, datetime]
Check = tuple[BudgetName, Decimal, str | None, str | None, Window]


class Budgets:
    """Budget arithmetic over the `runs` table, and the once-a-month alert claims."""

    def __init__(self, db: Driver) -> None:
        self._db = db
        # Who and where each run is (never changes): read once, not before every call.
        self._scopes: dict[str, tuple[str, str, str, datetime]] = {}

    async def refusal(
        self,
        c: Conn,
        *,
        team_id: str,
        user_id: str,
        worst_case: Decimal,
        limits: Limits,
        now: datetime,
        channel_id: str = "",
    ) -> BudgetRefusal | None:
        """Why a run holding `worst_case` may not start now (user's day first), or None."""
        for name, limit, user, channel, window in _checks(limits, user_id, channel_id, now):
            held = await self.held(c, team_id, user, window, channel_id=channel)
            if to_nanos(worst_case) + held.spent_nanos + held.held_nanos > to_nanos(limit):
                return BudgetRefusal(
                    run_id="",
                    budget=name,
                    limit_usd=limit,
                    spent_usd=from_nanos(held.spent_nanos),
                    reserved_usd=from_nanos(held.held_nanos),
                    worst_case_usd=worst_case,
                    resets_at=window[1],
                )
        return None

    async def likely_cost(
        self, c: Conn, *, team_id: str, models: str, worst_case: Decimal
    ) -> Decimal:
        """What to reserve: the 95th percentile (nearest rank) of the last finished, fully
        priced runs of the same models, or `worst_case` when there are fewer than 5."""
        if not models:
            return worst_case
        rows = await c.fetch(
            "SELECT cost_nanos FROM runs WHERE team_id = ? AND models = ? AND status ="
            " 'finished' AND unpriced_calls = 0 AND calls > 0"
            f" ORDER BY started_at DESC LIMIT {HISTORY_RUNS}",
            team_id,
            models,
        )
        costs = sorted(int(r[0]) for r in rows)
        if len(costs) < MIN_HISTORY:
            return worst_case
        return from_nanos(costs[math.ceil(len(costs) * PERCENTILE / 100) - 1])

    async def reserve_call(
        self, run_id: str, *, worst_case: Decimal, limits: Limits, now: datetime | None = None
    ) -> CallHold | BudgetStop:
        """Hold one model call's `worst_case` against every budget of `run_id` (those of its
        start's windows), atomically with every other instance's holds, or say why it may
        not start. It fits when the recorded spend, what calls in flight hold (this run's
        too) and `worst_case` stay within each limit; a call may also take a budget's last
        room alone, when nothing else is held there and spend is below the limit (so a
        budget smaller than one call's worst case still runs, one call at a time). So
        concurrent calls pass a budget jointly by at most one call's worst case."""
        if not limits.any:
            return CallHold(run_id, None, Decimal(0))
        team_id, user_id, channel_id, start = await self._scope(run_id)
        wanted = to_nanos(worst_case)
        # A hold need not survive the database server's crash (its call is recorded durably,
        # and a lost hold only lets that one call go unheld): its commit does not wait for
        # the disk, where the backend allows it.
        lock = f"orchestrate.budget:{team_id}"
        async with self._db.write(lock_key=lock, durable=False) as c:
            cost = int((await c.fetch(_RUN_COST, run_id))[0][0])
            for name, limit, user, channel, window in _checks(limits, user_id, channel_id, start):
                spent, held = await self._spent_and_held(c, team_id, user, channel, window)
                fits = spent + held + wanted <= to_nanos(limit)
                if not fits and not (held == 0 and spent < to_nanos(limit)):
                    return BudgetStop(name, limit, from_nanos(spent + held), from_nanos(cost),
                                      window[1], worst_case)  # fmt: skip
            key = str(uuid.uuid4())
            await c.execute(
                "INSERT INTO call_holds (id, run_id, amount_nanos, created_at) VALUES (?, ?, ?, ?)",
                key, run_id, wanted, self._db.to_db_time(now_utc(now)),
            )  # fmt: skip
        return CallHold(run_id, key, worst_case)

    async def _scope(self, run_id: str) -> tuple[str, str, str, datetime]:
        scope = self._scopes.get(run_id)
        if scope is None:
            async with self._db.read() as c:
                rows = await c.fetch(_RUN_SCOPE, run_id)
            if not rows:
                raise LedgerError(f"no run {run_id!r} in the ledger")
            team_id, user_id, channel_id, started = rows[0]
            scope = (team_id, user_id, channel_id, self._db.from_db_time(started))
            if len(self._scopes) >= SCOPES_KEPT:
                self._scopes.pop(next(iter(self._scopes)))  # the oldest run first
            self._scopes[run_id] = scope
        return scope

    async def release_call(self, hold: CallHold) -> None:
        """Give back a hold whose call will not be recorded (it never started, or a bug).
        A call's record settles its hold itself (`RunBook.record_call` with the hold's key);
        a run's end releases whatever it still holds."""
        if hold.key is None:
            return
        async with self._db.write(durable=False) as c:
            await c.execute("DELETE FROM call_holds WHERE id = ?", hold.key)

    async def _spent_and_held(
        self, c: Conn, team_id: str, user_id: str | None, channel_id: str | None, window: Window
    ) -> tuple[int, int]:
        # One statement, so that on PostgreSQL (READ COMMITTED) a call settled meanwhile is
        # seen either as its hold or as its cost, never as neither.
        where, args = time_scope(self._db, team_id, user_id, col="started_at", window=window)
        if channel_id is not None:
            where, args = f"channel_id = ? AND {where}", [channel_id, *args]
        rows = await c.fetch(
            f"SELECT COALESCE(SUM(cost_nanos), 0), (SELECT COALESCE(SUM(h.amount_nanos), 0)"
            f" FROM call_holds h JOIN runs ON runs.id = h.run_id WHERE runs.status = 'running'"
            f" AND {where}) FROM runs WHERE {where}",
            *args,
            *args,
        )
        return int(rows[0][0]), int(rows[0][1])

    async def held(
        self,
        c: Conn,
        team_id: str,
        user_id: str | None,
        window: tuple[datetime, datetime],
        *,
        channel_id: str | None = None,
    ) -> Held:
        # A run still running, or one with unpriced calls, counts the larger of its
        # reservation and its cost so far: its true cost is not known yet.
        where, args = time_scope(self._db, team_id, user_id, col="started_at", window=window)
        if channel_id is not None:
            where, args = f"channel_id = ? AND {where}", [channel_id, *args]
        rows = await c.fetch(
            "SELECT COALESCE(SUM(cost_nanos), 0), COALESCE(SUM(CASE WHEN"
            " (status = 'running' OR unpriced_calls > 0) AND reserved_nanos > cost_nanos"
            f" THEN reserved_nanos - cost_nanos ELSE 0 END), 0) FROM runs WHERE {where}",
            *args,
        )
        return Held(spent_nanos=int(rows[0][0]), held_nanos=int(rows[0][1]))

    async def workspace_month_spent(self, team_id: str, now: datetime | None = None) -> Decimal:
        """What the team's calls have cost this calendar month (reservations excluded)."""
        return await self.spent(team_id, periods.month_bounds(now_utc(now)))

    async def spent(
        self,
        team_id: str,
        window: tuple[datetime, datetime],
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
    ) -> Decimal:
        """What the runs of the team (of one person, or in one channel) started in `window`
        have cost (reservations excluded): a budget's use, as its check counts it."""
        async with self._db.read() as c:
            held = await self.held(c, team_id, user_id, window, channel_id=channel_id)
        return from_nanos(held.spent_nanos)


_RUN_SCOPE = "SELECT team_id, user_id, channel_id, started_at FROM runs WHERE id = ?"
_RUN_COST = "SELECT cost_nanos FROM runs WHERE id = ?"
SCOPES_KEPT = 10_000


def _checks(limits: Limits, user_id: str, channel_id: str, moment: datetime) -> list[Check]:
    """The budgets that apply, in the order a refusal names them: the person's day, the
    channel's month, the workspace's month."""
    day, month = periods.day_bounds(moment), periods.month_bounds(moment)
    checks: list[Check] = []
    if limits.user_daily is not None:
        checks.append(("user_daily", limits.user_daily, user_id, None, day))
    if limits.channel_monthly is not None:
        checks.append(("channel_monthly", limits.channel_monthly, None, channel_id, month))
    if limits.workspace_monthly is not None:
        checks.append(("workspace_monthly", limits.workspace_monthly, None, None, month))
    return checks
