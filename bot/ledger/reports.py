"""Reports: a period's spending by model, role, user and channel, and runs per day.

`Reports.summary` covers runs **started** in [since, until): by model and role it reads
`call_days` for the UTC days lying wholly inside the period and the raw `calls` for the
partial days at either end, so any period is exact and a month is a few thousand rows; run
counts and the top users and channels aggregate `runs`. `daily` groups runs by UTC day and
zero-fills. Every figure is a SQL aggregate returned as data (`CostReport`, `DayCost`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.core.pricing import ModelCost
from bot.core.usage import TokenUsage
from bot.ledger import periods
from bot.ledger.driver import EPOCH, Driver, Row, day_number, filters, time_scope
from bot.ledger.types import TOP_N, CostReport, DayCost, RoleCost, Spender, from_nanos


class Reports:
    """Read-only aggregates over `runs`, `calls` and `call_days`."""

    def __init__(self, db: Driver, *, strategy_model: str) -> None:
        self._db = db
        self._strategy_model = strategy_model

    async def summary(
        self,
        team_id: str | None,
        *,
        since: datetime,
        until: datetime,
        user_id: str | None = None,
    ) -> CostReport:
        """The admin (or, with `user_id`, personal) report; `team_id=None` means every team."""
        window = (since, until)
        runs_where, runs_args = time_scope(
            self._db, team_id, user_id, col="started_at", window=window
        )
        groups_sql, groups_args = self._groups_query(team_id, user_id, since, until)
        async with self._db.read() as c:
            groups = [_Group.of(r) for r in await c.fetch(groups_sql, *groups_args)]
            run_rows = await c.fetch(_RUN_COUNTS + runs_where, *runs_args)
            top_users = await c.fetch(_top("user_id", runs_where), *runs_args)
            top_channels = await c.fetch(_top("channel_id", runs_where), *runs_args)
        return _report(
            groups,
            scope=(team_id, user_id, periods.utc(since), periods.utc(until)),
            run_counts=tuple(int(n or 0) for n in run_rows[0][:3]),
            top_users=tuple(map(_spender, top_users)),
            top_channels=tuple(map(_spender, top_channels)),
            strategy_model=self._strategy_model,
        )

    async def teams_with_runs(self, *, since: datetime, until: datetime) -> list[str]:
        """The teams with a run started in [since, until) (the weekly digest's recipients)."""
        async with self._db.read() as c:
            rows = await c.fetch(
                "SELECT DISTINCT team_id FROM runs WHERE started_at >= ? AND started_at < ?"
                " AND status <> 'refused' ORDER BY team_id",
                self._db.to_db_time(since),
                self._db.to_db_time(until),
            )
        return [str(row[0]) for row in rows]

    async def daily(
        self,
        team_id: str,
        *,
        days: int,
        user_id: str | None = None,
        today: date | None = None,
    ) -> tuple[DayCost, ...]:
        """Runs and cost per UTC day for the last `days` days (oldest first), zero-filled."""
        last = today or datetime.now(UTC).date()
        first = last - timedelta(days=days - 1)
        window = (periods.midnight(first), periods.midnight(last + timedelta(days=1)))
        where, args = time_scope(self._db, team_id, user_id, col="started_at", window=window)
        day = self._db.day_sql.format(col="started_at")
        async with self._db.read() as c:
            rows = await c.fetch(
                f"SELECT {day} AS day, COUNT(*), SUM(cost_nanos) FROM runs WHERE {where}"
                f" AND status <> 'refused' AND {_POSTED} GROUP BY day",
                *args,
            )
        found = {EPOCH + timedelta(days=int(d)): (int(n), int(cost)) for d, n, cost in rows}
        return tuple(
            DayCost(
                day=d, runs=found.get(d, (0, 0))[0], cost_usd=from_nanos(found.get(d, (0, 0))[1])
            )
            for d in (first + timedelta(days=i) for i in range(days))
        )

    def _groups_query(
        self, team_id: str | None, user_id: str | None, since: datetime, until: datetime
    ) -> tuple[str, list[Any]]:
        """Per (model, role) sums: whole UTC days from `call_days`, the partial days at either
        end of the period from `calls`, so any [since, until) is exact and a month is fast."""
        first, last = _whole_days(periods.utc(since), periods.utc(until))
        days_where, days_args = filters(team_id, user_id, "day", first, last)
        head = (since, periods.midnight(EPOCH + timedelta(days=first)))
        tail = (max(since, periods.midnight(EPOCH + timedelta(days=last))), until)
        if first >= last:  # no whole day inside: the whole period is one raw range
            head, tail = (since, until), (until, until)
        branches = [_CALL_DAYS_BRANCH.format(where=days_where)]
        args: list[Any] = list(days_args)
        for window in (head, tail):
            where, more = time_scope(
                self._db, team_id, user_id, col="run_started_at", window=window
            )
            branches.append(_CALLS_BRANCH.format(where=where))
            args += more
        return _BY_MODEL_ROLE.format(branches=" UNION ALL ".join(branches)), args


_SUMS = (
    "calls, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,"
    " cache_read_tokens, thinking_tokens, cost_nanos, unpriced_calls, strategy_nanos,"
    " strategy_unpriced_calls, estimated_calls"
)
_CALL_DAYS_BRANCH = f"SELECT model, role, {_SUMS} FROM call_days WHERE {{where}}"
# One raw call, shaped like a call_days row (the same priced-only rules as the run totals).
_CALLS_BRANCH = (
    "SELECT model, role, 1, input_tokens, output_tokens, cache_write_5m_tokens,"
    " cache_write_1h_tokens, cache_read_tokens, thinking_tokens, COALESCE(cost_nanos, 0),"
    " CASE WHEN cost_nanos IS NULL THEN 1 ELSE 0 END,"
    " CASE WHEN cost_nanos IS NOT NULL THEN COALESCE(strategy_nanos, 0) ELSE 0 END,"
    " CASE WHEN cost_nanos IS NOT NULL AND strategy_nanos IS NULL THEN 1 ELSE 0 END,"
    " estimated FROM calls WHERE {where}"
)
_BY_MODEL_ROLE = (
    "SELECT model, role, SUM(calls), SUM(input_tokens), SUM(output_tokens),"
    " SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(cache_read_tokens),"
    " SUM(thinking_tokens), SUM(cost_nanos), SUM(unpriced_calls), SUM(strategy_nanos),"
    " SUM(strategy_unpriced_calls), SUM(estimated_calls)"
    " FROM ({branches}) AS t GROUP BY model, role"
)
# A run counts once it posted its thread or made a call: one that failed before its first
# message (a channel the bot cannot post in) cost nothing and showed nothing.
_POSTED = "(thread_ts IS NOT NULL OR calls > 0)"
_RUN_COUNTS = (
    "SELECT SUM(CASE WHEN status <> 'refused' AND parent_run_id IS NULL"
    f" AND {_POSTED} THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN status = 'refused' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN status <> 'refused' AND parent_run_id IS NOT NULL THEN 1 ELSE 0 END)"
    " FROM runs WHERE "
)


def _top(column: str, where: str) -> str:
    return (
        f"SELECT {column}, COUNT(*) AS n, COALESCE(SUM(cost_nanos), 0) AS cost FROM runs"
        f" WHERE {where} AND status <> 'refused' AND {_POSTED} GROUP BY {column}"
        f" ORDER BY cost DESC, n DESC, {column} LIMIT {TOP_N}"
    )


def _whole_days(since: datetime, until: datetime) -> tuple[int, int]:
    """[first, last) day numbers of the UTC days lying wholly inside [since, until)."""
    first = day_number(since)
    if since != periods.midnight(since.date()):
        first += 1
    return first, day_number(until)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Group:
    """One (model, role) aggregate row from the calls table."""

    model: str
    role: str
    calls: int
    usage: TokenUsage
    cost_nanos: int
    unpriced: int
    strategy_nanos: int
    strategy_unpriced: int

    @classmethod
    def of(cls, row: Row) -> _Group:
        n = [int(v or 0) for v in row[2:]]
        usage = TokenUsage(
            input_tokens=n[1],
            output_tokens=n[2],
            cache_write_5m_tokens=n[3],
            cache_write_1h_tokens=n[4],
            cache_read_tokens=n[5],
            thinking_tokens=n[6],
            estimated=n[11] > 0,
        )
        return cls(
            model=str(row[0]),
            role=str(row[1]),
            calls=n[0],
            usage=usage,
            cost_nanos=n[7],
            unpriced=n[8],
            strategy_nanos=n[9],
            strategy_unpriced=n[10],
        )


def _report(
    groups: Sequence[_Group],
    *,
    scope: tuple[str | None, str | None, datetime, datetime],
    run_counts: tuple[int, ...],
    top_users: tuple[Spender, ...],
    top_channels: tuple[Spender, ...],
    strategy_model: str,
) -> CostReport:
    team_id, user_id, since, until = scope
    strategy_known = not any(g.strategy_unpriced for g in groups)
    return CostReport(
        team_id=team_id,
        user_id=user_id,
        since=since,
        until=until,
        runs=run_counts[0],
        refused_runs=run_counts[1],
        followups=run_counts[2],
        calls=sum(g.calls for g in groups),
        total_usd=from_nanos(sum(g.cost_nanos for g in groups)),
        unpriced_calls=sum(g.unpriced for g in groups),
        by_model=_by_model(groups),
        by_role=_by_role(groups),
        top_users=top_users,
        top_channels=top_channels,
        strategy_model=strategy_model,
        all_strategy_model_usd=(
            from_nanos(sum(g.strategy_nanos for g in groups)) if strategy_known else None
        ),
    )


def _by_model(groups: Sequence[_Group]) -> tuple[ModelCost, ...]:
    merged: dict[str, list[_Group]] = {}
    for g in groups:
        merged.setdefault(g.model, []).append(g)
    costs = [
        ModelCost(
            model=model,
            calls=sum(g.calls for g in mine),
            usage=sum((g.usage for g in mine), TokenUsage()),
            cost_usd=None
            if any(g.unpriced for g in mine)
            else from_nanos(sum(g.cost_nanos for g in mine)),
        )
        for model, mine in merged.items()
    ]
    return tuple(sorted(costs, key=lambda m: (-(m.cost_usd or 0), m.model)))


def _by_role(groups: Sequence[_Group]) -> tuple[RoleCost, ...]:
    merged: dict[str, tuple[int, int, int]] = {}
    for g in groups:
        calls, cost, unpriced = merged.get(g.role, (0, 0, 0))
        merged[g.role] = (calls + g.calls, cost + g.cost_nanos, unpriced + g.unpriced)
    costs = [RoleCost(role, n, from_nanos(cost), u) for role, (n, cost, u) in merged.items()]
    return tuple(sorted(costs, key=lambda r: (-r.cost_usd, r.role)))


def _spender(row: Row) -> Spender:
    return Spender(id=str(row[0]), runs=int(row[1]), cost_usd=from_nanos(int(row[2])))
