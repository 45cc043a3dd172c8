"""What every part of the ledger shares: the driver both backends provide, and SQL helpers.

A `Driver` supplies connections, transactions, the write lock and the few dialect differences
(how a time is stored, how a day is computed); a `Conn` runs statements inside one of its
transactions. SQL is written with `?` placeholders in the subset SQLite and PostgreSQL share;
the PostgreSQL driver numbers them. Every part of the ledger (runs, budgets, reports, export)
is written once over this interface, which is what lets one conformance suite vouch for both
backends. The helpers here are the ones more than one part needs: "now" in UTC, the day
number of a time, and the team/user/time filter that keeps the planner on the indexes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime
from typing import Any, Protocol

from bot.core.text import storable
from bot.ledger import periods
from bot.ledger.migrations import Migration
from bot.ledger.types import LedgerError

Row = tuple[Any, ...]
EPOCH = date(1970, 1, 1)


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

    def write(
        self, *, lock_key: str | None = None, durable: bool = True
    ) -> AbstractAsyncContextManager[Conn]:
        """A write transaction, serialised against every other writer holding `lock_key`.
        `durable=False`: its commit need not wait for the disk (seen by every transaction at
        once, lost only if the database server itself crashes); where the backend cannot
        relax one transaction (SQLite), it is as durable as any other."""
        ...

    def read(self) -> AbstractAsyncContextManager[Conn]:
        """A read-only transaction over one consistent snapshot."""
        ...

    def to_db_time(self, moment: datetime) -> Any: ...

    def from_db_time(self, value: Any) -> datetime: ...


def now_utc(now: datetime | None) -> datetime:
    """`now` as aware UTC, or the current time when None (tests pin it)."""
    return datetime.now(UTC) if now is None else periods.utc(now)


def day_number(moment: datetime) -> int:
    """Whole UTC days since 1970-01-01: the `day` key of `call_days`."""
    return (moment.date() - EPOCH).days


def filters(
    team_id: str | None, user_id: str | None, col: str, lo: Any, hi: Any
) -> tuple[str, list[Any]]:
    """`[team_id = ? AND] [user_id = ? AND] col >= ? AND col < ?` and its arguments."""
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


def time_scope(
    db: Driver,
    team_id: str | None,
    user_id: str | None,
    *,
    col: str,
    window: tuple[datetime, datetime],
) -> tuple[str, list[Any]]:
    """`filters` over a time column, the window converted to the backend's time type."""
    return filters(team_id, user_id, col, db.to_db_time(window[0]), db.to_db_time(window[1]))


def storable_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A statement's arguments with every text made storable (`bot.core.text`): a NUL or a
    lone surrogate from Slack or a model must not fail the write that records it."""
    return tuple(storable(a) if isinstance(a, str) else a for a in args)


def require_run(changed: int, run_id: str) -> None:
    """An update that touched no run means the id is unknown: say so, never no-op."""
    if changed == 0:
        raise LedgerError(f"no run {run_id!r} in the ledger")
