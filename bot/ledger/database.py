"""The opened ledger: one driver, its schema brought up to date, and the parts that use it.

`Ledger` owns the driver's life (open, migrate, close) and hands out small parts that share
it: `runs` (runs and calls), `writer` (the same writes, waiting out an outage, for the run
owner), `budgets` (admission arithmetic, alert claims), `reports`
(summaries, daily totals), `export` (the finance CSV), `interactions` (stop requests and
votes from Slack) and `evals` (what `orchestrate-bot eval` spent, and its headline). They are
composed rather than mixed into one class so that each part is a small class with one
concern, each narrow consumer protocol (`bot.ledger.protocols`) is met by the one part that
owns it, and a consumer is handed that part alone: the Slack run owner never sees report
queries, the CLI never sees reservation writes. Both backends share every part; only the
driver differs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from bot.core.pricing import PriceTable
from bot.ledger.budgets import Budgets
from bot.ledger.driver import Conn, Driver
from bot.ledger.evals import Evals
from bot.ledger.export import CallExport
from bot.ledger.governance import Governance
from bot.ledger.instances import Instances
from bot.ledger.interactions import Interactions
from bot.ledger.migrations import SCHEMA_VERSION_TABLE, pending
from bot.ledger.pages import RunPages
from bot.ledger.reports import Reports
from bot.ledger.runs import RunBook
from bot.ledger.writer import RunWriter, name_older_spill

Book = TypeVar("Book", bound=RunBook)


class Ledger:
    """The cost ledger over any `Driver`; open with `await ledger.open()` or `async with`."""

    def __init__(
        self,
        driver: Driver,
        *,
        prices: PriceTable,
        strategy_model: str,
        older_spill: Path,
        store_questions: bool = True,
    ) -> None:
        self._db = driver
        self.strategy_model = strategy_model
        self.budgets = Budgets(driver)
        self.instances = Instances(driver, instance_id=str(uuid.uuid4()))

        def book(kind: type[Book]) -> Book:
            return kind(
                driver,
                budgets=self.budgets,
                prices=prices,
                strategy_model=strategy_model,
                store_questions=store_questions,
                owner=lambda: self.instances.id,
            )

        self.runs = book(RunBook)
        self.writer = book(RunWriter)  # the same book, its writes waiting
        self._older_spill = older_spill  # an older version's unlanded writes, named at open
        self.reports = Reports(driver, strategy_model=strategy_model)
        self.export = CallExport(driver)
        self.governance = Governance(driver)
        self.interactions = Interactions(driver)
        self.pages = RunPages(driver, store_questions=store_questions, read_run=self.runs.read_row)
        self.evals = Evals(driver, store_questions=store_questions)

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent across processes)."""
        await self._db.open()
        try:
            await self._migrate()
        except BaseException:
            await self._db.close()
            raise
        name_older_spill(self._older_spill)

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


async def _current_version(c: Conn) -> int:
    rows = await c.fetch("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(rows[0][0])
