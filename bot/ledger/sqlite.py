"""SQLite backend: one aiosqlite connection to a WAL-mode file, created on first start.

SQLite allows one writer at a time per file, across processes: every write transaction
starts with `BEGIN IMMEDIATE`, which takes that lock up front (waiting up to the busy
timeout), so a budget check and its reservation cannot interleave with another process's.
Within a process, an asyncio lock keeps coroutines from opening a second transaction on the
shared connection. `synchronous=FULL` makes a commit survive power loss, not only a crash.
Times are REAL Unix seconds in UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from bot.ledger.driver import Row, storable_args
from bot.ledger.migrations import SQLITE, SQLITE_DAY
from bot.ledger.periods import utc
from bot.ledger.types import LedgerError, LedgerUnavailable

BUSY_TIMEOUT_S = 30.0
# Primary result codes of a database that cannot write right now: BUSY, LOCKED, NOMEM,
# READONLY, IOERR, FULL, CANTOPEN, PROTOCOL (https://sqlite.org/rescode.html).
_UNAVAILABLE_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
_PREFIX = "sqlite:///"


def path_from_url(url: str) -> Path:
    """`sqlite:///relative/file.db` or `sqlite:////absolute/file.db` → the file's path."""
    if not url.startswith(_PREFIX) or len(url) == len(_PREFIX):
        raise LedgerError(f"{url!r} is not a SQLite URL: use sqlite:///path/to/file.db")
    return Path(url[len(_PREFIX) :].split("?", 1)[0])


class _Conn:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._db.execute(sql, storable_args(args)) as cursor:
            return cursor.rowcount

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._db.execute(sql, storable_args(args)) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def stream(self, sql: str, *args: Any) -> AsyncIterator[Row]:
        async with self._db.execute(sql, storable_args(args)) as cursor:
            async for row in cursor:
                yield tuple(row)


class SqliteDriver:
    """Connections and transactions for a SQLite file."""

    migrations = SQLITE
    day_sql = SQLITE_DAY

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN ourselves, so the driver never opens one.
        db = await aiosqlite.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
                await db.execute(f"PRAGMA {pragma}")
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @asynccontextmanager
    async def write(
        self, *, lock_key: str | None = None, durable: bool = True
    ) -> AsyncIterator[_Conn]:
        # BEGIN IMMEDIATE serialises every writer on the file, so lock_key needs no lock of
        # its own here; `synchronous` cannot change inside a transaction, so every commit is
        # durable.
        async with self._transaction("BEGIN IMMEDIATE") as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_Conn]:
        async with self._transaction("BEGIN") as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(self, begin: str) -> AsyncIterator[_Conn]:
        db = self._connection()
        async with self._lock:
            try:
                await db.execute(begin)
                yield _Conn(db)
                # Inside the try: a COMMIT refused (disk full) must roll back like any other
                # failure, or the transaction stays open and every later BEGIN fails.
                await db.execute("COMMIT")
            except BaseException as exc:
                # Also when cancelled while awaiting BEGIN: aiosqlite's worker thread still
                # runs it, so the transaction it opens must be closed before the lock is let
                # go, or every later BEGIN on this connection fails. Shielded, so a second
                # cancellation cannot stop the rollback from being queued.
                await asyncio.shield(_rollback(db))
                if is_unavailable(exc):
                    raise LedgerUnavailable(f"SQLite cannot write {self.path}: {exc}") from exc
                raise

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise LedgerError("the ledger is not open: call `await ledger.open()` first")
        return self._db

    def to_db_time(self, moment: datetime) -> float:
        return utc(moment).timestamp()

    def from_db_time(self, value: Any) -> datetime:
        return datetime.fromtimestamp(float(value), UTC)


def is_unavailable(exc: BaseException) -> bool:
    """An error a later retry may not meet: the disk is full or failing, the file is locked
    past the busy timeout, or cannot be opened (as opposed to a bug in our SQL)."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _UNAVAILABLE_CODES
    return isinstance(exc, OSError)


async def _rollback(db: aiosqlite.Connection) -> None:
    # OperationalError: BEGIN itself failed, so there is no transaction to roll back.
    with contextlib.suppress(sqlite3.OperationalError):
        await db.execute("ROLLBACK")
