"""Budgets: what counts against a budget, the admission check, month spend, and alert claims.

`Budgets.refusal` is the check `RunBook.reserve_run` makes inside its locked transaction: a
user's UTC day and a workspace's calendar month count every run's recorded cost, plus, for a
run still `running` or with unpriced calls, the part of its reservation above its cost so far
(its true cost is not known yet). `workspace_month_spent` is the month's recorded cost (for the
80% alert) and `claim_budget_alert` is true for exactly one caller per team, month and
threshold, across processes. Refusals come back as data (`BudgetRefusal`); `blocks/` words them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from bot.ledger import periods
from bot.ledger.driver import Conn, Driver, now_utc, time_scope
from bot.ledger.types import BudgetName, BudgetRefusal, BudgetStop, from_nanos, to_nanos

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

    async def stop(self, run_id: str, limits: Limits) -> BudgetStop | None:
        """Whether `run_id` must stop before its next call: true once what the period has
        spent (this run included), plus what other runs in progress still hold, reaches a
        budget. Windows are those of the run's start, the period it counts in."""
        async with self._db.read() as c:
            rows = await c.fetch(
                "SELECT team_id, user_id, channel_id, started_at, reserved_nanos, cost_nanos"
                " FROM runs WHERE id = ?",
                run_id,
            )
            if not rows:
                return None
            team_id, user_id, channel_id, started, reserved, cost = rows[0]
            mine = max(int(reserved) - int(cost), 0)
            start = self._db.from_db_time(started)
            for name, limit, user, channel, window in _checks(limits, user_id, channel_id, start):
                held = await self.held(c, team_id, user, window, channel_id=channel)
                used = held.spent_nanos + held.held_nanos - mine
                if used >= to_nanos(limit):
                    return BudgetStop(name, limit, from_nanos(used), from_nanos(int(cost)),
                                      window[1])  # fmt: skip
        return None

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
        async with self._db.read() as c:
            held = await self.held(c, team_id, None, periods.month_bounds(now_utc(now)))
        return from_nanos(held.spent_nanos)

    async def claim_budget_alert(self, team_id: str, month: date, threshold: int) -> bool:
        """True for exactly one caller per team, month and threshold (percent), ever."""
        async with self._db.write() as c:
            claimed = await c.execute(
                "INSERT INTO budget_alerts (team_id, month, threshold, claimed_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                team_id,
                f"{month:%Y-%m}",
                threshold,
                self._db.to_db_time(now_utc(None)),
            )
        return claimed == 1


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
