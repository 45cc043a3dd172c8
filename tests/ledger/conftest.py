"""Fixtures that give every ledger test a fresh database on each backend.

`ledger_url` is parametrised over SQLite (a file in the test's tmp dir) and PostgreSQL (a new
schema in the database named by DATABASE_URL_TEST_POSTGRES, dropped afterwards). Without that
variable the PostgreSQL variant is skipped locally, but fails under CI=true: in CI a skipped
backend would be a silent hole in the conformance suite.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.ledger import Ledger, open_ledger

POSTGRES_ENV = "DATABASE_URL_TEST_POSTGRES"


def postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    message = f'{POSTGRES_ENV} is unset: run `eval "$(bash .ci/postgres.sh)"` first'
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI must test PostgreSQL, not skip it)")
    pytest.skip(message)


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


async def execute_raw(url: str, sql: str) -> None:
    """Run one statement outside the ledger (to set up states the ledger refuses to make)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0]) as db:
            db.execute(sql)
        db.close()
        return
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def raw_sql() -> Callable[[str, str], Awaitable[None]]:
    return execute_raw


@pytest.fixture(params=["sqlite", "postgres"])
async def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    async with fresh_postgres_schema() as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_postgres_schema() -> AsyncIterator[str]:
    """A URL to a new, empty schema of the test PostgreSQL, dropped afterwards."""
    base = postgres_base_url()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    await execute_raw(base, f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(base, schema)
    finally:
        await execute_raw(base, f"DROP SCHEMA {schema} CASCADE")
        # The run engine's tables, when a test opened one on this ledger (bot.slack.engine).
        await execute_raw(base, f"DROP SCHEMA IF EXISTS {schema}_dbos CASCADE")


@pytest.fixture
async def ledger(ledger_url: str) -> AsyncIterator[Ledger]:
    async with open_ledger(ledger_url) as opened:
        yield opened
