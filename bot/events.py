"""Pipeline events: what a run tells the world, as one closed union of frozen dataclasses.

The pipeline emits these in order (run started, strategy, examples in completion order, the
review, then finished or failed) and knows nothing of who listens. The Slack edge renders
them; the ledger records `CallFinished`; the demo prints them. Consumers handle the union
exhaustively with `match` and `assert_never`, so a new event cannot be silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from bot.usage import CallRecord, TokenUsage

Verdict = Literal["ok", "warning", "problem"]


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    instruction: str


@dataclass(frozen=True, slots=True)
class Strategy:
    title: str
    essence: str
    components: tuple[Component, ...]


@dataclass(frozen=True, slots=True)
class Check:
    component: str
    verdict: Verdict
    reason: str


@dataclass(frozen=True, slots=True)
class Review:
    checks: tuple[Check, ...]
    gaps: tuple[str, ...]
    next_steps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ModelCost:
    """One model's share of a run: tokens and dollars (None when the model is unpriced)."""

    model: str
    calls: int
    usage: TokenUsage
    cost_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class CostSummary:
    """A run's bill. `total_usd` is None when any call is unpriced; so is the comparison."""

    by_model: tuple[ModelCost, ...]
    total_usd: Decimal | None
    all_strategy_model_usd: Decimal | None
    strategy_model: str

    @property
    def saving_pct(self) -> Decimal | None:
        if self.total_usd is None or not self.all_strategy_model_usd:
            return None
        return (1 - self.total_usd / self.all_strategy_model_usd) * 100

    @property
    def unpriced_models(self) -> tuple[str, ...]:
        return tuple(m.model for m in self.by_model if m.cost_usd is None)


@dataclass(frozen=True, slots=True)
class RunStarted:
    question: str
    models: tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A model call returned or failed; emitted before the event built from its answer."""

    call: CallRecord


@dataclass(frozen=True, slots=True)
class StrategyReady:
    strategy: Strategy
    model: str


@dataclass(frozen=True, slots=True)
class ExampleReady:
    index: int
    component: Component
    markdown: str
    model: str


@dataclass(frozen=True, slots=True)
class ExampleFailed:
    index: int
    component: Component
    reason: str
    model: str


@dataclass(frozen=True, slots=True)
class ReviewReady:
    review: Review
    model: str


@dataclass(frozen=True, slots=True)
class ReviewFailed:
    reason: str
    model: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    cost: CostSummary
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class RunFailed:
    """The run cannot go on (no strategy, or cancelled); `reason` tells a user what to do."""

    reason: str
    cost: CostSummary
    elapsed_s: float
    interrupted: bool = False


Event = (
    RunStarted
    | CallFinished
    | StrategyReady
    | ExampleReady
    | ExampleFailed
    | ReviewReady
    | ReviewFailed
    | RunFinished
    | RunFailed
)
