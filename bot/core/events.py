"""Pipeline events: what a run tells the world, as one closed union of frozen dataclasses.

The pipeline emits these in order (run started, drafts of the strategy as it streams, the
strategy, examples in completion order, the
review, then finished or failed) and knows nothing of who listens. The Slack edge renders
them; the ledger records `CallFinished`; the demo prints them. Consumers handle the union
exhaustively with `match` and `assert_never`, so a new event cannot be silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.models import Component, Review, Strategy
from bot.core.pricing import CostSummary
from bot.core.usage import CallRecord


@dataclass(frozen=True, slots=True)
class RunStarted:
    question: str
    models: tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A model call returned or failed; emitted before the event built from its answer."""

    call: CallRecord


@dataclass(frozen=True, slots=True)
class StrategyDraft:
    """The strategy as far as the model has written it (display only; may change or fail)."""

    strategy: Strategy
    model: str


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
    stopped_by: str | None = None  # who asked a stopped run to stop (a `RunStop`'s `by`)


Event = (
    RunStarted
    | CallFinished
    | StrategyDraft
    | StrategyReady
    | ExampleReady
    | ExampleFailed
    | ReviewReady
    | ReviewFailed
    | RunFinished
    | RunFailed
)
