"""The ledger's vocabulary: run statuses, budget decisions, cost reports, and money in nanos.

Every figure the ledger returns is one of these frozen dataclasses, shared by both backends
so that callers (the Slack edge, App Home, the operator CLI) never see a database row. Money
is stored as integer nano-dollars: every list price has at most three decimals per million
tokens, so a call's cost is a whole number of nano-dollars and sums stay exact in SQLite's
64-bit integers (up to $9.2 billion) as in PostgreSQL; it comes back out as `Decimal` dollars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from bot.core.models import Component, Strategy
from bot.core.pricing import ModelCost

RunStatus = Literal["running", "finished", "failed", "interrupted", "refused"]
EndStatus = Literal["finished", "failed", "interrupted"]
BudgetName = Literal["user_daily", "workspace_monthly", "channel_monthly"]
TOP_N = 5


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked (unknown run, schema from a newer build, bad URL)."""


class LedgerUnavailable(LedgerError):
    """The database cannot be reached or cannot write right now (server down, disk full,
    connection lost, locked past the busy timeout): the same write may succeed later."""


class SettingsChanged(LedgerError):
    """A save based on settings that changed since they were read (a modal opened before
    another admin saved, or a captured submission replayed): nothing was saved."""


def to_nanos(dollars: Decimal) -> int:
    """Whole nano-dollars; list prices make this exact, anything finer rounds half-up."""
    return int(dollars.scaleb(9).to_integral_value(rounding=ROUND_HALF_UP))


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos).scaleb(-9)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run as the ledger holds it, with the running totals of its calls."""

    id: str
    team_id: str
    channel_id: str
    user_id: str
    question_chars: int
    question: str | None
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    elapsed_s: float | None
    thread_channel: str | None
    thread_ts: str | None
    reserved_usd: Decimal
    cost_usd: Decimal
    calls: int
    unpriced_calls: int
    error: str | None
    parent_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class FollowUpTotals:
    """The follow-up runs of one run: how many, what their priced calls cost, and how many
    of their calls are unpriced (a renderer must not pass those off as $0)."""

    count: int
    cost_usd: Decimal
    unpriced_calls: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """A run admitted under its budgets; `reserved_usd` stays held until the run ends: the
    95th percentile of recent runs of the same models, or `worst_case_usd` without history."""

    run_id: str
    worst_case_usd: Decimal
    reserved_usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    """A run refused before any model call, with the figures that explain why (`blocks/`
    words them for the asker).

    `spent_usd` is what calls have cost so far in the budget's period; `reserved_usd` is what
    runs still in progress hold on top of that (their reservation beyond their cost so far).
    """

    run_id: str
    budget: BudgetName
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    worst_case_usd: Decimal
    """What the run would have held: its likely cost (or its worst case without history)."""
    resets_at: datetime | None = None
    """When the budget's period ends and its spending starts again from zero."""

    @property
    def left_usd(self) -> Decimal:
        return max(Decimal(0), self.limit_usd - self.spent_usd - self.reserved_usd)

    @property
    def reason(self) -> str:
        """What the refused run's row records: which budget refused (data, not a message)."""
        return f"refused: {self.budget} budget"


@dataclass(frozen=True, slots=True)
class RoleCost:
    role: str
    calls: int
    cost_usd: Decimal
    unpriced_calls: int


@dataclass(frozen=True, slots=True)
class Spender:
    """A user or channel among the top spenders of a period."""

    id: str
    runs: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class DayCost:
    day: date
    runs: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class CostReport:
    """Spending of a team (or of one user in it) over [since, until), by run start time.

    `total_usd` sums the priced calls; `unpriced_calls` counts the others, which a renderer
    must show beside the total (a period's report is not blanked by one unknown model, but it
    never passes an unknown cost off as $0). The all-strategy-model figure covers the same
    priced calls, so the saving compares like with like; it is None when the strategy model
    itself is unpriced.
    """

    team_id: str | None
    user_id: str | None
    since: datetime
    until: datetime
    runs: int
    refused_runs: int
    calls: int
    total_usd: Decimal
    unpriced_calls: int
    by_model: tuple[ModelCost, ...]
    by_role: tuple[RoleCost, ...]
    top_users: tuple[Spender, ...]
    top_channels: tuple[Spender, ...]
    strategy_model: str
    all_strategy_model_usd: Decimal | None
    followups: int = 0
    """Follow-ups answered in runs' threads (their own runs, not counted in `runs`; their
    calls are in every total, so `average_per_run_usd` is a run with its follow-ups)."""

    @property
    def average_per_run_usd(self) -> Decimal | None:
        return self.total_usd / self.runs if self.runs else None

    @property
    def saving_pct(self) -> Decimal | None:
        if not self.all_strategy_model_usd:
            return None
        return (1 - self.total_usd / self.all_strategy_model_usd) * 100


DEFAULT_ALERT_THRESHOLDS = (50, 80, 100)


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """A team's budgets and spending policy, as admins set them (or the environment's initial
    values where they have not): None means no such budget; no allowed channels means
    everywhere; no alert channel means admins' DMs."""

    workspace_monthly_usd: Decimal | None = None
    user_daily_usd: Decimal | None = None
    channel_monthly_usd: tuple[tuple[str, Decimal], ...] = ()
    alert_thresholds_pct: tuple[int, ...] = DEFAULT_ALERT_THRESHOLDS
    alert_channel: str | None = None
    allowed_channels: tuple[str, ...] = ()

    def channel_budget(self, channel_id: str) -> Decimal | None:
        return dict(self.channel_monthly_usd).get(channel_id)

    def allows(self, channel_id: str) -> bool:
        return not self.allowed_channels or channel_id in self.allowed_channels


@dataclass(frozen=True, slots=True)
class SettingChange:
    """One entry of the audit trail: `key` went from `old_value` to `new_value` (None: unset)."""

    key: str
    old_value: str | None
    new_value: str | None
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetStop:
    """A model call refused before it started: its worst case does not fit in what a budget
    has left. `spent_usd` is the period's recorded spend (this run included) plus what calls
    in flight hold; `run_cost_usd` what this run has cost so far."""

    budget: BudgetName
    limit_usd: Decimal
    spent_usd: Decimal
    run_cost_usd: Decimal
    resets_at: datetime
    call_worst_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class CallHold:
    """One model call's worst case, held against its run's budgets from just before the call
    starts until its record is written with `key` (which settles it to the real cost) or it
    is released. `key` None: nothing is held (no budget applies, or the ledger could not be
    reached and the call goes on, as the run's writes do)."""

    run_id: str
    key: str | None
    amount_usd: Decimal


@dataclass(frozen=True, slots=True)
class KeptStrategy:
    """What the ledger keeps of a run for a Retry of one of its examples: the question and
    strategy the examples were written from, and the components (0-based) whose example
    call in that run did not succeed and that no Retry has illustrated since, the only ones
    a Retry may redo."""

    question: str
    strategy: Strategy
    failed: frozenset[int]


def strategy_to_json(strategy: Strategy) -> dict[str, Any]:
    """A strategy as JSON-able data (the ledger's column, a run page's event)."""
    return {
        "title": strategy.title,
        "essence": strategy.essence,
        "components": [{"name": c.name, "instruction": c.instruction} for c in strategy.components],
    }


def strategy_from_json(data: dict[str, Any]) -> Strategy:
    return Strategy(
        title=str(data["title"]),
        essence=str(data["essence"]),
        components=tuple(
            Component(name=str(c["name"]), instruction=str(c["instruction"]))
            for c in data["components"]
        ),
    )
