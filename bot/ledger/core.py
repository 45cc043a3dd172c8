"""The ledger's behaviour, written once over a small driver interface both backends provide.

`SqlLedger` holds every query and rule (migrations at open, durable call records, budgets
checked and reserved in one locked transaction, SQL-aggregated reports); a `Driver` supplies
connections, transactions, the write lock and the few dialect differences (how a time is
stored, how a day is computed). SQL is written with `?` placeholders in the subset SQLite and
PostgreSQL share; the PostgreSQL driver numbers them. Keeping one implementation is what
lets one conformance suite vouch for both backends.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol, Self, TextIO

from bot.core.pricing import ModelCost, PriceTable
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import periods
from bot.ledger.migrations import CALL_DAYS_COLUMNS, SCHEMA_VERSION_TABLE, Migration, pending
from bot.ledger.types import (
    TOP_N,
    BudgetName,
    BudgetRefusal,
    CostReport,
    DayCost,
    EndStatus,
    LedgerError,
    Reservation,
    RoleCost,
    RunInfo,
    Spender,
    from_nanos,
    to_nanos,
)

Row = tuple[Any, ...]
_EPOCH = date(1970, 1, 1)
CSV_COLUMNS = (
    "call_id", "created_at", "run_id", "team_id", "channel_id", "user_id", "role", "model",
    "request_id", "component_index", "input_tokens", "output_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "cache_read_tokens", "thinking_tokens", "cost_usd", "latency_s",
    "outcome", "error",
)  # fmt: skip


class Conn(Protocol):
    """One connection, inside whatever transaction the driver opened for it."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the number of rows it changed."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    def stream(self, sql: str, *args: Any) -> AsyncIterator[Row]: ...


class Driver(Protocol):
    """What a backend provides: connections, locked transactions, and its dialect."""

    migrations: tuple[Migration, ...]
    day_sql: str  # "{col}" → whole days since 1970-01-01 (UTC) of that time column

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def write(self, *, lock_key: str | None = None) -> AbstractAsyncContextManager[Conn]:
        """A write transaction, serialised against every other writer holding `lock_key`."""
        ...

    def read(self) -> AbstractAsyncContextManager[Conn]:
        """A read-only transaction over one consistent snapshot."""
        ...

    def to_db_time(self, moment: datetime) -> Any: ...

    def from_db_time(self, value: Any) -> datetime: ...


@dataclass(frozen=True, slots=True)
class _Held:
    """What counts against a budget in a window: calls' cost, and reservations on top."""

    spent_nanos: int
    held_nanos: int


class SqlLedger:
    """The cost ledger over any `Driver`; open with `await ledger.open()` or `async with`."""

    def __init__(
        self,
        driver: Driver,
        *,
        prices: PriceTable,
        strategy_model: str,
        store_questions: bool = True,
    ) -> None:
        self._db = driver
        self._prices = prices
        self.strategy_model = strategy_model
        self._store_questions = store_questions

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent across processes)."""
        await self._db.open()
        try:
            await self._migrate()
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        async with self._db.read() as c:
            return await _current_version(c)

    async def _migrate(self) -> None:
        async with self._db.write(lock_key="orchestrate.migrate") as c:
            await c.execute(SCHEMA_VERSION_TABLE)
            for step in pending(self._db.migrations, await _current_version(c)):
                for statement in step.statements:
                    await c.execute(statement)
                await c.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    step.version,
                    step.name,
                    datetime.now(UTC).isoformat(),
                )

    # --- runs and calls -------------------------------------------------------------------

    async def start_run(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        question: str,
        now: datetime | None = None,
    ) -> str:
        """Record a run with no budget check; returns its id."""
        async with self._db.write() as c:
            return await self._insert_run(
                c, team_id, channel_id, user_id, question, _now(now), reserved=0
            )

    async def get_run(self, run_id: str) -> RunInfo | None:
        async with self._db.read() as c:
            rows = await c.fetch(_SELECT_RUN, run_id)
        return self._run_info(rows[0]) if rows else None

    def _run_info(self, row: Row) -> RunInfo:
        (run_id, team, channel, user, chars, question, status, started, finished, elapsed,
         thread_channel, thread_ts, reserved, cost, calls, unpriced, error) = row  # fmt: skip
        return RunInfo(
            id=run_id, team_id=team, channel_id=channel, user_id=user,
            question_chars=int(chars), question=question, status=status,
            started_at=self._db.from_db_time(started),
            finished_at=None if finished is None else self._db.from_db_time(finished),
            elapsed_s=elapsed, thread_channel=thread_channel, thread_ts=thread_ts,
            reserved_usd=from_nanos(int(reserved)), cost_usd=from_nanos(int(cost)),
            calls=int(calls), unpriced_calls=int(unpriced), error=error,
        )  # fmt: skip

    async def set_thread(self, run_id: str, channel: str, ts: str) -> None:
        async with self._db.write() as c:
            changed = await c.execute(
                "UPDATE runs SET thread_channel = ?, thread_ts = ? WHERE id = ?",
                channel,
                ts,
                run_id,
            )
        _require_run(changed, run_id)

    async def record_call(
        self, run_id: str, call: CallRecord, *, now: datetime | None = None
    ) -> None:
        """Write one call and its run's running totals; committed (durable) on return."""
        cost = None if call.cost_usd is None else to_nanos(call.cost_usd)
        strategy = self._prices.cost_as(self.strategy_model, call.usage)
        strategy_nanos = None if strategy is None else to_nanos(strategy)
        deltas = _run_deltas(cost, strategy_nanos)
        async with self._db.write() as c:
            owner = await c.fetch(_UPDATE_RUN_TOTALS, *deltas, run_id)
            if not owner:
                raise LedgerError(f"no run {run_id!r} in the ledger: start_run first")
            team_id, user_id, started_at = owner[0]
            await c.execute(
                _INSERT_CALL,
                run_id,
                team_id,
                user_id,
                started_at,
                *_call_values(call, cost, strategy_nanos),
                self._db.to_db_time(_now(now)),
            )
            day = (self._db.from_db_time(started_at).date() - _EPOCH).days
            cost_delta, strategy_delta, unpriced, strategy_unpriced = deltas
            await c.execute(
                _UPSERT_CALL_DAY,
                team_id, day, user_id, call.model, call.role, *_usage_values(call.usage),
                cost_delta, unpriced, strategy_delta, strategy_unpriced,
            )  # fmt: skip

    async def finish_run(
        self,
        run_id: str,
        status: EndStatus,
        *,
        elapsed_s: float,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None:
        async with self._db.write() as c:
            changed = await c.execute(
                "UPDATE runs SET status = ?, finished_at = ?, elapsed_s = ?, error = ?"
                " WHERE id = ?",
                status,
                self._db.to_db_time(_now(now)),
                elapsed_s,
                error,
                run_id,
            )
        _require_run(changed, run_id)

    async def mark_interrupted(
        self, *, started_before: datetime | None = None, now: datetime | None = None
    ) -> int:
        """Mark runs still `running` (left by a dead process) interrupted; returns how many.

        With several instances on one database, pass `started_before` (now minus the longest
        a run can take) so a starting instance leaves its siblings' live runs alone.
        """
        sql = "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
        sql += " WHERE status = 'running'"
        args: list[Any] = [self._db.to_db_time(_now(now)), _ORPHANED]
        if started_before is not None:
            sql += " AND started_at < ?"
            args.append(self._db.to_db_time(started_before))
        async with self._db.write() as c:
            return await c.execute(sql, *args)

    async def interrupted_threads(self, *, marked_at: datetime) -> list[tuple[str, str]]:
        """The Slack threads (channel, ts) of the runs `mark_interrupted(now=marked_at)`
        closed, so the restarted bot can say so in each of them."""
        sql = (
            "SELECT thread_channel, thread_ts FROM runs WHERE status = 'interrupted'"
            " AND finished_at = ? AND error = ? AND thread_ts IS NOT NULL"
        )
        async with self._db.read() as c:
            rows = await c.fetch(sql, self._db.to_db_time(marked_at), _ORPHANED)
        return [(str(channel), str(ts)) for channel, ts in rows]

    # --- budgets --------------------------------------------------------------------------

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
        now: datetime | None = None,
    ) -> Reservation | BudgetRefusal:
        """Check what is left and insert the run with its reservation, in one transaction.

        A refusal is recorded as a `refused` run (no calls, counts toward nothing) so that
        admins can see refusals; the run is otherwise `running` and holds `worst_case_usd`.
        """
        moment = _now(now)
        async with self._db.write(lock_key=f"orchestrate.budget:{team_id}") as c:
            refusal = await self._refusal(
                c, team_id, user_id, worst_case_usd, user_budget, workspace_budget, moment
            )
            reserved = to_nanos(worst_case_usd)
            run_id = await self._insert_run(
                c, team_id, channel_id, user_id, question, moment, reserved=reserved,
                status="running" if refusal is None else "refused",
                error=None if refusal is None else refusal.message,
            )  # fmt: skip
        if refusal is None:
            return Reservation(run_id=run_id, worst_case_usd=worst_case_usd)
        return replace(refusal, run_id=run_id)

    async def workspace_month_spent(self, team_id: str, now: datetime | None = None) -> Decimal:
        """What the team's calls have cost this calendar month (reservations excluded)."""
        async with self._db.read() as c:
            held = await self._held(c, team_id, None, periods.month_bounds(_now(now)))
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
                self._db.to_db_time(_now(None)),
            )
        return claimed == 1

    async def _refusal(
        self,
        c: Conn,
        team_id: str,
        user_id: str,
        worst_case: Decimal,
        user_budget: Decimal | None,
        workspace_budget: Decimal | None,
        now: datetime,
    ) -> BudgetRefusal | None:
        checks: list[tuple[BudgetName, Decimal | None, str | None, tuple[datetime, datetime]]] = [
            ("user_daily", user_budget, user_id, periods.day_bounds(now)),
            ("workspace_monthly", workspace_budget, None, periods.month_bounds(now)),
        ]
        for name, limit, user, window in checks:
            if limit is None:
                continue
            held = await self._held(c, team_id, user, window)
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

    async def _held(
        self, c: Conn, team_id: str, user_id: str | None, window: tuple[datetime, datetime]
    ) -> _Held:
        # A run still running, or one with unpriced calls, counts the larger of its
        # reservation and its cost so far: its true cost is not known yet.
        where, args = self._scope(team_id, user_id, "started_at", *window)
        rows = await c.fetch(
            "SELECT COALESCE(SUM(cost_nanos), 0), COALESCE(SUM(CASE WHEN"
            " (status = 'running' OR unpriced_calls > 0) AND reserved_nanos > cost_nanos"
            f" THEN reserved_nanos - cost_nanos ELSE 0 END), 0) FROM runs WHERE {where}",
            *args,
        )
        return _Held(spent_nanos=int(rows[0][0]), held_nanos=int(rows[0][1]))

    # --- reports --------------------------------------------------------------------------

    async def summary(
        self,
        team_id: str | None,
        *,
        since: datetime,
        until: datetime,
        user_id: str | None = None,
    ) -> CostReport:
        """The admin (or, with `user_id`, personal) report; `team_id=None` means every team."""
        runs_where, runs_args = self._scope(team_id, user_id, "started_at", since, until)
        groups_sql, groups_args = self._groups_query(team_id, user_id, since, until)
        async with self._db.read() as c:
            groups = [_Group.of(r) for r in await c.fetch(groups_sql, *groups_args)]
            run_rows = await c.fetch(_RUN_COUNTS + runs_where, *runs_args)
            top_users = await c.fetch(_top("user_id", runs_where), *runs_args)
            top_channels = await c.fetch(_top("channel_id", runs_where), *runs_args)
        return _report(
            groups,
            scope=(team_id, user_id, periods.utc(since), periods.utc(until)),
            run_counts=(int(run_rows[0][0] or 0), int(run_rows[0][1] or 0)),
            top_users=tuple(map(_spender, top_users)),
            top_channels=tuple(map(_spender, top_channels)),
            strategy_model=self.strategy_model,
        )

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
        where, args = self._scope(team_id, user_id, "started_at", *window)
        day = self._db.day_sql.format(col="started_at")
        async with self._db.read() as c:
            rows = await c.fetch(
                f"SELECT {day} AS day, COUNT(*), SUM(cost_nanos) FROM runs WHERE {where}"
                " AND status <> 'refused' GROUP BY day",
                *args,
            )
        found = {_EPOCH + timedelta(days=int(d)): (int(n), int(cost)) for d, n, cost in rows}
        return tuple(
            DayCost(
                day=d, runs=found.get(d, (0, 0))[0], cost_usd=from_nanos(found.get(d, (0, 0))[1])
            )
            for d in (first + timedelta(days=i) for i in range(days))
        )

    async def export_calls_csv(self, team_id: str | None, since: datetime, out: TextIO) -> int:
        """Every call made since `since` (by call time) as CSV for finance; returns the rows."""
        sql = _EXPORT + " WHERE c.created_at >= ?"
        args: list[Any] = [self._db.to_db_time(since)]
        if team_id is not None:
            sql += " AND c.team_id = ?"
            args.append(team_id)
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        written = 0
        async with self._db.read() as c:
            async for row in c.stream(sql + " ORDER BY c.created_at, c.id", *args):
                writer.writerow(self._csv_row(row))
                written += 1
        return written

    def _csv_row(self, row: Row) -> list[Any]:
        cells = list(row)
        cells[1] = self._db.from_db_time(cells[1]).isoformat()
        cells[16] = "" if cells[16] is None else f"{from_nanos(int(cells[16])):.9f}"
        return ["" if cell is None else cell for cell in cells]

    # --- helpers --------------------------------------------------------------------------

    def _groups_query(
        self, team_id: str | None, user_id: str | None, since: datetime, until: datetime
    ) -> tuple[str, list[Any]]:
        """Per (model, role) sums: whole UTC days from `call_days`, the partial days at either
        end of the period from `calls`, so any [since, until) is exact and a month is fast."""
        first, last = _whole_days(periods.utc(since), periods.utc(until))
        days_where, days_args = _filters(team_id, user_id, "day", first, last)
        head = (since, periods.midnight(_EPOCH + timedelta(days=first)))
        tail = (max(since, periods.midnight(_EPOCH + timedelta(days=last))), until)
        if first >= last:  # no whole day inside: the whole period is one raw range
            head, tail = (since, until), (until, until)
        branches = [_CALL_DAYS_BRANCH.format(where=days_where)]
        args: list[Any] = list(days_args)
        for lo, hi in (head, tail):
            where, more = self._scope(team_id, user_id, "run_started_at", lo, hi)
            branches.append(_CALLS_BRANCH.format(where=where))
            args += more
        return _BY_MODEL_ROLE.format(branches=" UNION ALL ".join(branches)), args

    def _scope(
        self,
        team_id: str | None,
        user_id: str | None,
        time_col: str,
        since: datetime,
        until: datetime,
    ) -> tuple[str, list[Any]]:
        lo, hi = self._db.to_db_time(since), self._db.to_db_time(until)
        return _filters(team_id, user_id, time_col, lo, hi)

    async def _insert_run(
        self,
        c: Conn,
        team_id: str,
        channel_id: str,
        user_id: str,
        question: str,
        now: datetime,
        *,
        reserved: int,
        status: str = "running",
        error: str | None = None,
    ) -> str:
        run_id = str(uuid.uuid4())
        await c.execute(
            "INSERT INTO runs (id, team_id, channel_id, user_id, question_chars, question,"
            " status, started_at, reserved_nanos, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_id, team_id, channel_id, user_id, len(question),
            question if self._store_questions else None,
            status, self._db.to_db_time(now), reserved, error,
        )  # fmt: skip
        return run_id


# --- SQL and row shaping --------------------------------------------------------------------

_SELECT_RUN = (
    "SELECT id, team_id, channel_id, user_id, question_chars, question, status, started_at,"
    " finished_at, elapsed_s, thread_channel, thread_ts, reserved_nanos, cost_nanos, calls,"
    " unpriced_calls, error FROM runs WHERE id = ?"
)
_UPDATE_RUN_TOTALS = (
    "UPDATE runs SET cost_nanos = cost_nanos + ?, strategy_nanos = strategy_nanos + ?,"
    " calls = calls + 1, unpriced_calls = unpriced_calls + ?,"
    " strategy_unpriced_calls = strategy_unpriced_calls + ?"
    " WHERE id = ? RETURNING team_id, user_id, started_at"
)
_INSERT_CALL = (
    "INSERT INTO calls (run_id, team_id, user_id, run_started_at, role, model, request_id,"
    " component_index, input_tokens, output_tokens, cache_write_5m_tokens,"
    " cache_write_1h_tokens, cache_read_tokens, thinking_tokens, cost_nanos, strategy_nanos,"
    " latency_s, outcome, error, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_CALL_DAY = (
    f"INSERT INTO call_days ({CALL_DAYS_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (team_id, day, user_id, model, role) DO UPDATE SET"
    " calls = call_days.calls + 1,"
    " input_tokens = call_days.input_tokens + excluded.input_tokens,"
    " output_tokens = call_days.output_tokens + excluded.output_tokens,"
    " cache_write_5m_tokens = call_days.cache_write_5m_tokens + excluded.cache_write_5m_tokens,"
    " cache_write_1h_tokens = call_days.cache_write_1h_tokens + excluded.cache_write_1h_tokens,"
    " cache_read_tokens = call_days.cache_read_tokens + excluded.cache_read_tokens,"
    " thinking_tokens = call_days.thinking_tokens + excluded.thinking_tokens,"
    " cost_nanos = call_days.cost_nanos + excluded.cost_nanos,"
    " strategy_nanos = call_days.strategy_nanos + excluded.strategy_nanos,"
    " unpriced_calls = call_days.unpriced_calls + excluded.unpriced_calls,"
    " strategy_unpriced_calls = call_days.strategy_unpriced_calls"
    " + excluded.strategy_unpriced_calls"
)
_SUMS = (
    "calls, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,"
    " cache_read_tokens, thinking_tokens, cost_nanos, unpriced_calls, strategy_nanos,"
    " strategy_unpriced_calls"
)
_CALL_DAYS_BRANCH = f"SELECT model, role, {_SUMS} FROM call_days WHERE {{where}}"
# One raw call, shaped like a call_days row (the same priced-only rules as the run totals).
_CALLS_BRANCH = (
    "SELECT model, role, 1, input_tokens, output_tokens, cache_write_5m_tokens,"
    " cache_write_1h_tokens, cache_read_tokens, thinking_tokens, COALESCE(cost_nanos, 0),"
    " CASE WHEN cost_nanos IS NULL THEN 1 ELSE 0 END,"
    " CASE WHEN cost_nanos IS NOT NULL THEN COALESCE(strategy_nanos, 0) ELSE 0 END,"
    " CASE WHEN cost_nanos IS NOT NULL AND strategy_nanos IS NULL THEN 1 ELSE 0 END"
    " FROM calls WHERE {where}"
)
_BY_MODEL_ROLE = (
    "SELECT model, role, SUM(calls), SUM(input_tokens), SUM(output_tokens),"
    " SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(cache_read_tokens),"
    " SUM(thinking_tokens), SUM(cost_nanos), SUM(unpriced_calls), SUM(strategy_nanos),"
    " SUM(strategy_unpriced_calls) FROM ({branches}) AS t GROUP BY model, role"
)
_RUN_COUNTS = (
    "SELECT SUM(CASE WHEN status <> 'refused' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN status = 'refused' THEN 1 ELSE 0 END) FROM runs WHERE "
)
_EXPORT = (
    "SELECT c.id, c.created_at, c.run_id, c.team_id, r.channel_id, c.user_id, c.role,"
    " c.model, c.request_id, c.component_index, c.input_tokens, c.output_tokens,"
    " c.cache_write_5m_tokens, c.cache_write_1h_tokens, c.cache_read_tokens,"
    " c.thinking_tokens, c.cost_nanos, c.latency_s, c.outcome, c.error"
    " FROM calls c JOIN runs r ON r.id = c.run_id"
)


_ORPHANED = "the process stopped mid-run"


def _top(column: str, where: str) -> str:
    return (
        f"SELECT {column}, COUNT(*) AS n, COALESCE(SUM(cost_nanos), 0) AS cost FROM runs"
        f" WHERE {where} AND status <> 'refused' GROUP BY {column}"
        f" ORDER BY cost DESC, n DESC, {column} LIMIT {TOP_N}"
    )


def _run_deltas(cost: int | None, strategy: int | None) -> tuple[int, int, int, int]:
    # The run's all-strategy total covers priced calls only, like the report's comparison.
    priced = cost is not None
    return (
        cost or 0,
        strategy if priced and strategy is not None else 0,
        0 if priced else 1,
        1 if priced and strategy is None else 0,
    )


def _usage_values(u: TokenUsage) -> tuple[int, ...]:
    return (
        u.input_tokens, u.output_tokens, u.cache_write_5m_tokens, u.cache_write_1h_tokens,
        u.cache_read_tokens, u.thinking_tokens,
    )  # fmt: skip


def _call_values(call: CallRecord, cost: int | None, strategy: int | None) -> tuple[Any, ...]:
    return (
        call.role, call.model, call.request_id, call.component_index,
        *_usage_values(call.usage), cost, strategy, call.latency_s, call.outcome, call.error,
    )  # fmt: skip


def _filters(
    team_id: str | None, user_id: str | None, col: str, lo: Any, hi: Any
) -> tuple[str, list[Any]]:
    # Built per call rather than "(? IS NULL OR team_id = ?)" so the planner uses the index.
    clauses = [f"{col} >= ?", f"{col} < ?"]
    args: list[Any] = [lo, hi]
    if user_id is not None:
        clauses.insert(0, "user_id = ?")
        args.insert(0, user_id)
    if team_id is not None:
        clauses.insert(0, "team_id = ?")
        args.insert(0, team_id)
    return " AND ".join(clauses), args


def _whole_days(since: datetime, until: datetime) -> tuple[int, int]:
    """[first, last) day numbers of the UTC days lying wholly inside [since, until)."""
    first = (since.date() - _EPOCH).days
    if since != periods.midnight(since.date()):
        first += 1
    return first, (until.date() - _EPOCH).days


@dataclass(frozen=True, slots=True)
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
        )
        return cls(str(row[0]), str(row[1]), n[0], usage, n[7], n[8], n[9], n[10])


def _report(
    groups: Sequence[_Group],
    *,
    scope: tuple[str | None, str | None, datetime, datetime],
    run_counts: tuple[int, int],
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


async def _current_version(c: Conn) -> int:
    rows = await c.fetch("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(rows[0][0])


def _require_run(changed: int, run_id: str) -> None:
    if changed == 0:
        raise LedgerError(f"no run {run_id!r} in the ledger")


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else periods.utc(now)
