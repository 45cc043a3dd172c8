"""What the web view is handed by the composition root (`bot/services.py`): a protocol of
the few services it reads, so the arrow points one way (it renders; it never writes, and it
never reaches the sandbox or the run owner)."""

from __future__ import annotations

from typing import Protocol

from slack_sdk.web.async_client import AsyncWebClient

from bot.ledger import BudgetUse, CostReports, Feedback, GovernanceStore, PageReader
from bot.settings import Settings


class WebDeps(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def client(self) -> AsyncWebClient: ...

    @property
    def pages(self) -> PageReader: ...

    @property
    def reports(self) -> CostReports: ...

    @property
    def feedback(self) -> Feedback: ...

    @property
    def governance(self) -> GovernanceStore: ...

    @property
    def budgets(self) -> BudgetUse: ...
