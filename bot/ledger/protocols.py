"""What each consumer may ask of the ledger: one narrow protocol per consumer.

A consumer depends on the few methods it calls, not on the whole ledger, so a reader sees at
a glance what the Slack run owner writes and what a report view reads, and a test can stand
in a small fake where no database is wanted. Each protocol is met by one part of `Ledger`
(`bot.ledger.database`): `RunLedger` by `ledger.writer` (or `ledger.runs`), `InstanceLedger`
by `ledger.instances`, `BudgetAlerts` by `ledger.budgets`, `CostReports` by `ledger.reports`,
`CallsExport` by `ledger.export`, `RunLookup` by `ledger.runs`, `StopRequests` and `Feedback`
by `ledger.interactions`, `EvalResults` by `ledger.evals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TextIO

from bot.core.events import Event
from bot.core.models import Strategy
from bot.core.usage import CallRecord
from bot.ledger.budgets import Limits
from bot.ledger.evals import EvalHeadline
from bot.ledger.interactions import FeedbackReport, VoteValue
from bot.ledger.pages import RunPage
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
    Reservation,
    RunInfo,
    SettingChange,
)


class RunLedger(Protocol):
    """The run owner (`bot/slack/runs.py`): admit a run, record its calls, close it."""

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
        parent_run_id: str | None = None,
        channel_budget: Decimal | None = None,
        models: str = "",
        now: datetime | None = None,
        run_id: str | None = None,
    ) -> Reservation | BudgetRefusal: ...

    async def get_run(self, run_id: str) -> RunInfo | None: ...

    async def followups(self, run_id: str) -> FollowUpTotals: ...

    async def reserve_call(
        self, run_id: str, *, worst_case_usd: Decimal, limits: Limits
    ) -> CallHold | BudgetStop: ...

    async def release_call(self, hold: CallHold) -> None: ...

    async def set_thread(self, run_id: str, channel: str, ts: str) -> None: ...

    async def record_strategy(
        self, run_id: str, strategy: Strategy, *, now: datetime | None = None
    ) -> None: ...

    async def kept_strategy(self, run_id: str) -> KeptStrategy | None: ...

    async def record_call(
        self,
        run_id: str,
        call: CallRecord,
        *,
        key: str | None = None,
        now: datetime | None = None,
    ) -> bool: ...

    async def finish_run(
        self,
        run_id: str,
        status: EndStatus,
        *,
        elapsed_s: float,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None: ...


class InstanceLedger(Protocol):
    """Liveness (`bot/slack/liveness.py`): beat, forget dead instances, leave."""

    id: str

    async def beat(self, *, now: datetime | None = None) -> bool: ...

    async def live(self, *, ttl: timedelta, now: datetime | None = None) -> int: ...

    async def live_ids(self, *, ttl: timedelta, now: datetime | None = None) -> set[str]: ...

    async def reap(
        self, *, ttl: timedelta, ownerless_before: datetime, now: datetime | None = None
    ) -> list[tuple[str, str]]: ...

    async def leave(self) -> None: ...


class CostReports(Protocol):
    """The report views (`/orchestrate costs`, App Home) and the operator CLI."""

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

    async def teams_with_runs(self, *, since: datetime, until: datetime) -> list[str]: ...


class BudgetAlerts(Protocol):
    """The 80% watch (`bot/slack/budget_alerts.py`): the month's spend (each alert is sent
    once by its workflow's id, `bot/slack/workflows.py`)."""

    async def workspace_month_spent(self, team_id: str, now: datetime | None = None) -> Decimal: ...


class BudgetUse(BudgetAlerts, Protocol):
    """The admins' dashboard (`bot/web`): how much of each budget is used."""

    async def spent(
        self,
        team_id: str,
        window: tuple[datetime, datetime],
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
    ) -> Decimal: ...


class CallsExport(Protocol):
    """The operator CLI's `costs --csv`: every call since a moment, for finance."""

    async def calls_csv(
        self, team_id: str | None, since: datetime, out: TextIO, *, until: datetime | None = None
    ) -> int: ...


class GovernanceStore(Protocol):
    """Admins' settings (`bot/slack/governance.py`, App Home, the run owner): read at every
    use, saved with an audit trail; once-per-period notices."""

    async def budget_settings(self, team_id: str, defaults: BudgetSettings) -> BudgetSettings: ...

    async def save(
        self,
        team_id: str,
        settings: BudgetSettings,
        *,
        changed_by: str,
        defaults: BudgetSettings,
        based_on: str | None = None,
        now: datetime | None = None,
    ) -> tuple[SettingChange, ...]: ...

    async def version(self, team_id: str) -> str: ...

    async def changes(self, team_id: str, *, limit: int = 5) -> tuple[SettingChange, ...]: ...


class RunLookup(Protocol):
    """Interactivity (`bot/slack/actions.py`): whose run a button belongs to, and its state."""

    async def get_run(self, run_id: str) -> RunInfo | None: ...


class PageLog(Protocol):
    """The run owner (`bot/slack/runs.py`): what each run showed, kept for its web page."""

    async def record(self, run_id: str, event: Event, *, now: datetime | None = None) -> None: ...

    async def restart(self, run_id: str) -> None: ...


class PageReader(Protocol):
    """The web view (`bot/web`): a run with its follow-ups and their events, and a cheap
    fingerprint that changes when any of them does (what a live page polls)."""

    async def page(self, run_id: str) -> RunPage | None: ...

    async def version(self, run_id: str) -> tuple[Any, ...]: ...


class StopRequests(Protocol):
    """Stop: the button's handler asks (any instance); the run, once stopped, reads who."""

    async def request_stop(
        self, run_id: str, user_id: str, *, now: datetime | None = None
    ) -> bool: ...

    async def stop_requests_for(self, run_ids: Sequence[str]) -> dict[str, str]: ...


class EvalResults(Protocol):
    """The last `orchestrate-bot eval`'s headline, for admins' App Home (`bot/slack/home.py`)."""

    async def latest(self) -> EvalHeadline | None: ...


class Feedback(Protocol):
    """Votes on a run's answer (`bot/slack/actions.py`) and their report (App Home, costs)."""

    async def vote(
        self, run_id: str, user_id: str, vote: VoteValue, *, now: datetime | None = None
    ) -> VoteValue | None: ...

    async def set_vote_reason(self, run_id: str, user_id: str, reason: str) -> bool: ...

    async def feedback(
        self, team_id: str, *, since: datetime, until: datetime
    ) -> FeedbackReport: ...
