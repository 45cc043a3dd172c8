"""PostgreSQL backend: an asyncpg pool, for several bot instances sharing one database.

Write transactions that need to exclude each other across processes (a budget check and its
reservation; a schema migration) take `pg_advisory_xact_lock` on a key hashed from a name
(the team id for budgets), which the transaction's end releases; at READ COMMITTED every
statement after the lock sees what the previous holder committed. Reports run in a read-only
REPEATABLE READ transaction so their several queries see one snapshot. The shared SQL uses
`?` placeholders, numbered here into asyncpg's `$1, $2, …`. Add `?search_path=schema` to the
URL to keep the ledger in its own schema (asyncpg passes it as a server setting).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from bot.ledger.driver import Row, storable_args
from bot.ledger.migrations import POSTGRES, POSTGRES_DAY
from bot.ledger.periods import utc
from bot.ledger.types import LedgerError, LedgerUnavailable

POOL_MAX_SIZE = 10
CLOSE_TIMEOUT_S = 5.0
# A server stopped, restarting, out of resources or unreachable: a later retry may succeed.
_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def is_unavailable(exc: BaseException) -> bool:
    """A failure of the connection or the server rather than of our SQL."""
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc)  # "connection is closed", "pool is closed"
    return isinstance(exc, _UNAVAILABLE)


@contextmanager
def unavailable_as_ledger_error() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_unavailable(exc) and not isinstance(exc, LedgerError):
            raise LedgerUnavailable(f"PostgreSQL is unavailable: {exc!r}") from exc
        raise


_ROWS_CHANGED = re.compile(r"(\d+)$")
_ARGUMENT = re.compile(r"(invalid input for query argument \$\d+): .* \(([^()]*)\)$", re.DOTALL)


@contextmanager
def values_kept_out() -> Iterator[None]:
    """asyncpg's `DataError` quotes the argument it could not encode ("invalid input for
    query argument $4: 'the question…' (…)"): raised again without the value, and without
    the original chained, so no person's text reaches a traceback in the logs."""
    try:
        yield
    except asyncpg.exceptions.DataError as exc:
        found = _ARGUMENT.match(str(exc))
        what = f"{found.group(1)} ({found.group(2)})" if found else type(exc).__name__
        raise LedgerError(f"PostgreSQL refused a value: {what}") from None


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`a = ? AND b = ?` → `a = $1 AND b = $2` (our SQL has no `?` inside literals)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


class _Conn:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        with values_kept_out():
            status: str = await self._conn.execute(numbered(sql), *storable_args(args))
        match = _ROWS_CHANGED.search(status)  # "UPDATE 3", "INSERT 0 1", "CREATE TABLE"
        return int(match.group(1)) if match else 0

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with values_kept_out():
            records = await self._conn.fetch(numbered(sql), *storable_args(args))
        return [tuple(record) for record in records]

    async def stream(self, sql: str, *args: Any) -> AsyncIterator[Row]:
        with values_kept_out():
            cursor = self._conn.cursor(numbered(sql), *storable_args(args), prefetch=1000)
            async for record in cursor:
                yield tuple(record)


class PostgresDriver:
    """Connections and transactions for a PostgreSQL database."""

    migrations = POSTGRES
    day_sql = POSTGRES_DAY

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=POOL_MAX_SIZE)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                # A graceful close waits on every connection; a server that is gone may
                # never answer, so give up after a while and drop the sockets.
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await pool.close()
            except Exception as exc:
                if not isinstance(exc, TimeoutError) and not is_unavailable(exc):
                    raise
                pool.terminate()

    @asynccontextmanager
    async def write(
        self, *, lock_key: str | None = None, durable: bool = True
    ) -> AsyncIterator[_Conn]:
        with unavailable_as_ledger_error():
            async with self._connection().acquire() as conn, conn.transaction():
                if not durable:
                    await conn.execute("SET LOCAL synchronous_commit TO OFF")
                if lock_key is not None:
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock_key
                    )
                yield _Conn(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_Conn]:
        pool = self._connection()
        with unavailable_as_ledger_error():
            async with (
                pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                yield _Conn(conn)

    def _connection(self) -> asyncpg.Pool:
        if self._pool is None:
            raise LedgerError("the ledger is not open: call `await ledger.open()` first")
        return self._pool

    def to_db_time(self, moment: datetime) -> datetime:
        return utc(moment)

    def from_db_time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise LedgerError(f"expected a timestamp from PostgreSQL, got {value!r}")
        return value.astimezone(UTC)
