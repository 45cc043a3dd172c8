"""The shapes `blocks/` renders, as read-only Protocols, so it never has to import `bot`.

Each Protocol mirrors the fields of a type the pipeline or the ledger owns (`bot.events`'
`Component`, `Strategy`, `Review`, `CostSummary`…, `bot.ledger.types`' `CostReport`, `RoleCost`,
`Spender`, `DayCost`), under the same names; the frozen dataclasses there satisfy them
structurally, and a test in `tests/blocks` checks that they do, with mypy.
Only what the builders read is listed: a new field elsewhere costs nothing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Literal, Protocol

Verdict = Literal["ok", "warning", "problem"]
PeriodKind = Literal["today", "days", "this_month", "last_month", "since_date", "range"]


class ComponentView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def instruction(self) -> str: ...


class StrategyView(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def essence(self) -> str: ...
    @property
    def components(self) -> Sequence[ComponentView]: ...


class CheckView(Protocol):
    @property
    def component(self) -> str: ...
    @property
    def verdict(self) -> Verdict: ...
    @property
    def reason(self) -> str: ...


class ReviewView(Protocol):
    @property
    def checks(self) -> Sequence[CheckView]: ...
    @property
    def gaps(self) -> Sequence[str]: ...
    @property
    def next_steps(self) -> Sequence[str]: ...


class UsageView(Protocol):
    """Billable token buckets of a model's calls; `output_tokens` already includes thinking.
    `estimated`: some output was estimated (a call cut off before the API counted it)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_write_5m_tokens(self) -> int: ...
    @property
    def cache_write_1h_tokens(self) -> int: ...
    @property
    def cache_read_tokens(self) -> int: ...
    @property
    def thinking_tokens(self) -> int: ...
    @property
    def estimated(self) -> bool: ...


class ModelCostView(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def calls(self) -> int: ...
    @property
    def usage(self) -> UsageView: ...
    @property
    def cost_usd(self) -> Decimal | None: ...


class CostSummaryView(Protocol):
    """A run's bill; `total_usd` is None when any model is unpriced."""

    @property
    def by_model(self) -> Sequence[ModelCostView]: ...
    @property
    def total_usd(self) -> Decimal | None: ...
    @property
    def all_strategy_model_usd(self) -> Decimal | None: ...
    @property
    def strategy_model(self) -> str: ...
    @property
    def saving_pct(self) -> Decimal | None: ...


class RoleCostView(Protocol):
    """A pipeline role's calls over a period; `cost_usd` sums the priced ones only."""

    @property
    def role(self) -> str: ...
    @property
    def calls(self) -> int: ...
    @property
    def cost_usd(self) -> Decimal: ...
    @property
    def unpriced_calls(self) -> int: ...


class SpenderView(Protocol):
    """A user or channel among a period's top spenders, by its Slack id."""

    @property
    def id(self) -> str: ...
    @property
    def runs(self) -> int: ...
    @property
    def cost_usd(self) -> Decimal: ...


class DayCostView(Protocol):
    """One UTC day's runs and priced spending."""

    @property
    def day(self) -> date: ...
    @property
    def runs(self) -> int: ...
    @property
    def cost_usd(self) -> Decimal: ...


class CostReportView(Protocol):
    """Spending over a period, as the ledger reports it; a member's report holds only their runs.

    `total_usd` sums the priced calls and `unpriced_calls` counts the others, which are shown
    beside it; `all_strategy_model_usd` covers the same priced calls.
    """

    @property
    def runs(self) -> int: ...
    @property
    def refused_runs(self) -> int: ...
    @property
    def calls(self) -> int: ...
    @property
    def total_usd(self) -> Decimal: ...
    @property
    def unpriced_calls(self) -> int: ...
    @property
    def average_per_run_usd(self) -> Decimal | None: ...
    @property
    def by_model(self) -> Sequence[ModelCostView]: ...
    @property
    def by_role(self) -> Sequence[RoleCostView]: ...
    @property
    def top_users(self) -> Sequence[SpenderView]: ...
    @property
    def top_channels(self) -> Sequence[SpenderView]: ...
    @property
    def strategy_model(self) -> str: ...
    @property
    def all_strategy_model_usd(self) -> Decimal | None: ...
    @property
    def saving_pct(self) -> Decimal | None: ...


class BudgetRefusalView(Protocol):
    """A run refused by a budget: which one, and the figures that explain why.

    `spent_usd` is what calls cost so far in the budget's period; `reserved_usd` what runs in
    progress hold on top of it; `left_usd` the remainder (never below zero).
    """

    @property
    def budget(self) -> Literal["user_daily", "workspace_monthly"]: ...
    @property
    def limit_usd(self) -> Decimal: ...
    @property
    def spent_usd(self) -> Decimal: ...
    @property
    def reserved_usd(self) -> Decimal: ...
    @property
    def worst_case_usd(self) -> Decimal: ...
    @property
    def left_usd(self) -> Decimal: ...


class PeriodView(Protocol):
    """A reporting period: what kind it is and the UTC days it covers (both inclusive)."""

    @property
    def kind(self) -> PeriodKind: ...
    @property
    def days(self) -> int: ...
    @property
    def first(self) -> date: ...
    @property
    def last(self) -> date: ...
