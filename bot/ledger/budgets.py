"""Budgets: what counts against a budget, the admission check, month spend, and alert claims.

`Budgets.refusal` is the check `RunBook.reserve_run` makes inside its locked transaction: a
user's UTC day and a workspace's calendar month count every run's recorded cost, plus, for a
run still `running` or with unpriced calls, the part of its reservation above its cost so far
(its true cost is not known yet). `workspace_month_spent` is the month's recorded cost (for the
80% alert) and `claim_budget_alert` is true for exactly one caller per team, month and
threshold, across processes. Refusals come back as data (`BudgetRefusal`); `blocks/` words them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from bot.ledger import periods
from bot.ledger.driver import Conn, Driver, now_utc, time_scope
from bot.ledger.types import BudgetName, BudgetRefusal, from_nanos, to_nanos


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
    ) -> BudgetRefusal | None:
        """Why a run of `worst_case` may not start now (user's day first), or None."""
        checks: list[tuple[BudgetName, Decimal | None, str | None, tuple[datetime, datetime]]] = [
            ("user_daily", limits.user_daily, user_id, periods.day_bounds(now)),
            ("workspace_monthly", limits.workspace_monthly, None, periods.month_bounds(now)),
        ]
        for name, limit, user, window in checks:
            if limit is None:
                continue
            held = await self.held(c, team_id, user, window)
            if to_nanos(worst_case) + held.spent_nanos + held.held_nanos > to_nanos(limit):
                return BudgetRefusal(
                    run_id="",
                    budget=name,
                    limit_usd=limit,
                    spent_usd=from_nanos(held.spent_nanos),
                    reserved_usd=from_nanos(held.held_nanos),
                    worst_case_usd=worst_case,
                )
        return None

    async def held(
        self, c: Conn, team_id: str, user_id: str | None, window: tuple[datetime, datetime]
    ) -> Held:
        # A run still running, or one with unpriced calls, counts the larger of its
        # reservation and its cost so far: its true cost is not known yet.
        where, args = time_scope(self._db, team_id, user_id, col="started_at", window=window)
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
