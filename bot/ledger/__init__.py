"""The cost ledger: every run and model call, budgets, and the reports admins read.

`Ledger` is the protocol the app depends on; `open_ledger(url)` returns the backend the URL
names: `sqlite:///path/to/file.db` (aiosqlite, the default, a file created on first start) or
`postgresql://user@host/db` (asyncpg pool, for several instances behind a load balancer).
The returned ledger is not yet connected: use `async with open_ledger(url) as ledger:` or
`await ledger.open()` … `await ledger.close()` (as an aiohttp `cleanup_ctx` does); opening
applies pending schema migrations. Design and figures: docs/ledger.md.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Protocol, Self, TextIO

from bot.core.pricing import PriceTable
from bot.core.usage import CallRecord
from bot.ledger.core import Driver, SqlLedger
from bot.ledger.periods import parse_period
from bot.ledger.types import (
    BudgetRefusal,
    CostReport,
    DayCost,
    EndStatus,
    LedgerError,
    Reservation,
    RoleCost,
    RunInfo,
    RunStatus,
    Spender,
)
from bot.settings import Settings

__all__ = [
    "BudgetRefusal",
    "CostReport",
    "DayCost",
    "EndStatus",
    "Ledger",
    "LedgerError",
    "Reservation",
    "RoleCost",
    "RunInfo",
    "RunStatus",
    "Spender",
    "ledger_for",
    "open_ledger",
    "parse_period",
]


class Ledger(Protocol):
    """What the app may ask of the ledger; both backends pass one conformance suite."""

    strategy_model: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def schema_version(self) -> int: ...

    async def start_run(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        question: str,
        now: datetime | None = None,
    ) -> str: ...

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
    ) -> Reservation | BudgetRefusal: ...

    async def get_run(self, run_id: str) -> RunInfo | None: ...

    async def set_thread(self, run_id: str, channel: str, ts: str) -> None: ...

    async def record_call(
        self, run_id: str, call: CallRecord, *, now: datetime | None = None
    ) -> None: ...

    async def finish_run(
        self,
        run_id: str,
        status: EndStatus,
        *,
        elapsed_s: float,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None: ...

    async def mark_interrupted(
        self, *, started_before: datetime | None = None, now: datetime | None = None
    ) -> int: ...

    async def interrupted_threads(self, *, marked_at: datetime) -> list[tuple[str, str]]: ...

    async def summary(
        self,
        team_id: str | None,
        *,
        since: datetime,
        until: datetime,
        user_id: str | None = None,
    ) -> CostReport: ...

    async def daily(
        self,
        team_id: str,
        *,
        days: int,
        user_id: str | None = None,
        today: date | None = None,
    ) -> tuple[DayCost, ...]: ...

    async def export_calls_csv(self, team_id: str | None, since: datetime, out: TextIO) -> int: ...

    async def workspace_month_spent(self, team_id: str, now: datetime | None = None) -> Decimal: ...

    async def claim_budget_alert(self, team_id: str, month: date, threshold: int) -> bool: ...


def open_ledger(
    url: str,
    *,
    prices: PriceTable | None = None,
    strategy_model: str | None = None,
    store_questions: bool = True,
) -> Ledger:
    """The backend `url` names, not yet connected; defaults: packaged prices, Settings' models."""
    return SqlLedger(
        _driver(url),
        prices=prices if prices is not None else PriceTable.load(),
        strategy_model=strategy_model or Settings().strategy_model,
        store_questions=store_questions,
    )


def _driver(url: str) -> Driver:
    if url.startswith("sqlite:///"):
        from bot.ledger.sqlite import SqliteDriver, path_from_url

        return SqliteDriver(path_from_url(url))
    if url.startswith(("postgresql://", "postgres://")):
        # Imported here so that asyncpg stays an optional dependency for SQLite users.
        from bot.ledger.postgres import PostgresDriver

        return PostgresDriver(url)
    raise LedgerError(f"unsupported ledger URL {url!r}: use sqlite:///… or postgresql://…")


def ledger_for(settings: Settings) -> Ledger:
    """The ledger `settings` describe: DATABASE_URL, PRICES_FILE, STRATEGY_MODEL, questions."""
    return open_ledger(
        settings.database_url,
        prices=PriceTable.load(settings.prices_file),
        strategy_model=settings.strategy_model,
        store_questions=settings.ledger_store_questions,
    )
