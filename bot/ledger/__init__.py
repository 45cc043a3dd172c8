"""The cost ledger: every run and model call, budgets, and the reports admins read.

`open_ledger(url)` returns the `Ledger` the URL names: `sqlite:///path/to/file.db` (aiosqlite,
the default, a file created on first start) or `postgresql://user@host/db` (asyncpg pool, for
several instances behind a load balancer). It is not yet connected: use
`async with open_ledger(url) as ledger:` or `await ledger.open()` … `await ledger.close()`
(as an aiohttp `cleanup_ctx` does); opening applies pending schema migrations. The ledger's
parts (`ledger.runs`, `.budgets`, `.reports`, `.export`, `.interactions`) each meet one
narrow consumer protocol from `bot.ledger.protocols`. Design and figures: docs/ledger.md.
"""

from __future__ import annotations

from pathlib import Path

from bot.core.pricing import PriceTable
from bot.ledger.budgets import Limits
from bot.ledger.database import Ledger
from bot.ledger.driver import Driver
from bot.ledger.evals import EvalHeadline
from bot.ledger.governance import initial_settings
from bot.ledger.interactions import FeedbackReport, ModelSetFeedback, VoteValue
from bot.ledger.pages import PageRun, RunPage
from bot.ledger.periods import Period, parse_period, read_period
from bot.ledger.protocols import (
    BudgetAlerts,
    BudgetUse,
    CallsExport,
    CostReports,
    EvalResults,
    Feedback,
    GovernanceStore,
    InstanceLedger,
    PageLog,
    PageReader,
    RunLedger,
    RunLookup,
    StopRequests,
)
from bot.ledger.types import (
    BudgetRefusal,
    BudgetSettings,
    BudgetStop,
    CallHold,
    CostReport,
    DayCost,
    EndStatus,
    FollowUpTotals,
    KeptStrategy,
    LedgerError,
    LedgerUnavailable,
    Reservation,
    RoleCost,
    RunInfo,
    RunStatus,
    SettingChange,
    SettingsChanged,
    Spender,
)
from bot.ledger.writer import older_spill_path
from bot.settings import Settings

__all__ = [
    "BudgetAlerts",
    "BudgetRefusal",
    "BudgetSettings",
    "BudgetStop",
    "BudgetUse",
    "CallHold",
    "CallsExport",
    "CostReport",
    "CostReports",
    "DayCost",
    "EndStatus",
    "EvalHeadline",
    "EvalResults",
    "Feedback",
    "FeedbackReport",
    "FollowUpTotals",
    "GovernanceStore",
    "InstanceLedger",
    "KeptStrategy",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "Limits",
    "ModelSetFeedback",
    "PageLog",
    "PageReader",
    "PageRun",
    "Period",
    "Reservation",
    "RoleCost",
    "RunInfo",
    "RunLedger",
    "RunLookup",
    "RunPage",
    "RunStatus",
    "SettingChange",
    "SettingsChanged",
    "Spender",
    "StopRequests",
    "VoteValue",
    "initial_settings",
    "ledger_for",
    "open_ledger",
    "parse_period",
    "read_period",
]


def open_ledger(
    url: str,
    *,
    prices: PriceTable | None = None,
    strategy_model: str | None = None,
    store_questions: bool = True,
    older_spill: Path | None = None,
) -> Ledger:
    """The backend `url` names, not yet connected; defaults: packaged prices, Settings' models,
    and the spill file an older version kept for this database (`older_spill_path`)."""
    return Ledger(
        _driver(url),
        prices=prices if prices is not None else PriceTable.load(),
        strategy_model=strategy_model or Settings().strategy_model,
        store_questions=store_questions,
        older_spill=older_spill or older_spill_path(url),
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
    """The ledger `settings` describe: DATABASE_URL, PRICES_FILE, STRATEGY_MODEL, questions,
    LEDGER_SPILL_FILE."""
    return open_ledger(
        settings.database_url,
        prices=PriceTable.load(settings.prices_file),
        strategy_model=settings.strategy_model,
        store_questions=settings.ledger_store_questions,
        older_spill=settings.ledger_spill_file,
    )
