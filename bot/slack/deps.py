"""What the Slack edge is handed by the composition root (`bot/services.py`).

A protocol, not the composition root's own class, so the edge depends on the few services
it uses and the arrow points one way: the composition root builds the edge, never the
reverse.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.claude import Claude
from bot.core.pricing import PriceTable
from bot.ledger import (
    CallsExport,
    CostReports,
    EvalResults,
    Feedback,
    GovernanceStore,
    RunLookup,
    StopRequests,
)
from bot.settings import Settings
from bot.slack.conversations import Conversations
from bot.slack.health import Database
from bot.slack.metrics import Metrics
from bot.slack.poster import Poster
from bot.slack.runs import Runs


class Services(Protocol):
    """The process's services, as the Slack edge sees them."""

    @property
    def settings(self) -> Settings: ...

    @property
    def reports(self) -> CostReports: ...

    @property
    def prices(self) -> PriceTable: ...

    @property
    def governance(self) -> GovernanceStore: ...

    @property
    def export(self) -> CallsExport: ...

    @property
    def client(self) -> AsyncWebClient: ...

    @property
    def poster(self) -> Poster: ...

    @property
    def runs(self) -> Runs: ...

    @property
    def conversations(self) -> Conversations: ...

    @property
    def run_lookup(self) -> RunLookup: ...

    @property
    def stops(self) -> StopRequests: ...

    @property
    def feedback(self) -> Feedback: ...

    @property
    def evals(self) -> EvalResults: ...

    @property
    def claude(self) -> Claude: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def database(self) -> Database: ...


class OpenServices(Protocol):
    """Opens the services for the life of a server (drains runs in flight on exit)."""

    def __call__(self) -> AbstractAsyncContextManager[Services]: ...
