"""One eval question, paid once: the orchestrate arm, the all-Opus arm, two judgments.

`Arms.question` runs the question through the real `Pipeline` (the prompts, models and
efforts a Slack run uses), asks the strategy model the same question alone
(`Claude.baseline`), then has the judge compare the two answers twice, orchestrate first and
then second, and folds both verdicts into one outcome. Every call is written to the ledger as
it returns, in runs of kind 'eval' (`bot.ledger.evals`). The result is plain data
(`QuestionResult`), kept as JSON in --out so a resumed eval never pays for it again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

from bot.core.claude import Claude
from bot.core.events import (
    CallFinished,
    Event,
    ExampleFailed,
    ExampleReady,
    ReviewFailed,
    ReviewReady,
    RunFailed,
    RunFinished,
    StrategyReady,
)
from bot.core.judging import Judgment, Scores
from bot.core.models import Review, Strategy
from bot.core.pipeline import Pipeline
from bot.core.pricing import PriceTable
from bot.core.usage import CallRecord
from bot.ledger import Ledger
from bot.settings import Settings

Outcome = Literal["win", "tie", "loss"]
ARMS = ("orchestrate", "baseline")
_MARKS = {"ok": "✓", "warning": "⚠", "problem": "✗"}


@dataclass(slots=True)
class ArmResult:
    """One arm's answer (or why there is none), what it cost and how long it took."""

    answer: str | None
    problem: str | None
    cost_usd: str  # Decimal as text, so the JSON keeps every digit
    wall_s: float
    calls: int
    estimated: bool = False
    # The orchestrate arm's footer: its own tokens priced all on the strategy model.
    predicted_all_opus_usd: str | None = None

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_usd)


@dataclass(slots=True)
class OrderVerdict:
    """One judge call: which arm was shown first, and what the judge said of A and B."""

    first: str
    winner: str  # "A", "B", "tie"; "" when the call gave no usable verdict
    a: dict[str, int] = field(default_factory=dict)
    b: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    problem: str | None = None


@dataclass(slots=True)
class QuestionResult:
    key: str
    index: int
    repeat: int
    question: str
    orchestrate: ArmResult
    baseline: ArmResult
    judge_model: str
    judge_cost_usd: str
    verdicts: list[OrderVerdict]
    outcome: Outcome | None  # None: not judged (both arms failed, or the judge did)
    quality: dict[str, float | None]  # mean rubric score (1-5) per arm over both orders

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuestionResult:
        return cls(
            key=str(data["key"]),
            index=int(data["index"]),
            repeat=int(data["repeat"]),
            question=str(data["question"]),
            orchestrate=ArmResult(**data["orchestrate"]),
            baseline=ArmResult(**data["baseline"]),
            judge_model=str(data["judge_model"]),
            judge_cost_usd=str(data["judge_cost_usd"]),
            verdicts=[OrderVerdict(**v) for v in data["verdicts"]],
            outcome=data["outcome"],
            quality=dict(data["quality"]),
        )


class Arms:
    """Runs eval questions with one pipeline, one Claude client and one ledger."""

    def __init__(
        self,
        pipeline: Pipeline,
        claude: Claude,
        ledger: Ledger,
        *,
        settings: Settings,
        prices: PriceTable,
        judge_model: str,
    ) -> None:
        self.pipeline = pipeline
        self._claude = claude
        self._ledger = ledger
        self.settings = settings
        self.prices = prices
        self.judge_model = judge_model

    async def question(self, question: str, *, key: str, index: int, repeat: int) -> QuestionResult:
        orchestrate = await self._orchestrate(question)
        baseline = await self._baseline(question)
        verdicts, judge_cost = await self._judge(question, orchestrate, baseline)
        outcome, quality = fold(orchestrate, baseline, verdicts)
        return QuestionResult(
            key=key,
            index=index,
            repeat=repeat,
            question=question,
            orchestrate=orchestrate,
            baseline=baseline,
            judge_model=self.judge_model,
            judge_cost_usd=str(judge_cost),
            verdicts=verdicts,
            outcome=outcome,
            quality=quality,
        )

    async def _orchestrate(self, question: str) -> ArmResult:
        run_id = await self._ledger.evals.start_run(question)
        thread = _Thread()
        clock = time.monotonic()

        async def emit(event: Event) -> None:
            if isinstance(event, CallFinished):
                await self._ledger.runs.record_call(run_id, event.call)
            thread.take(event)

        try:
            await self.pipeline.run(question, emit=emit)
        except asyncio.CancelledError:
            await self._finish(run_id, "interrupted", clock)
            raise
        wall = time.monotonic() - clock
        await self._finish(run_id, "finished" if thread.problem is None else "failed", clock)
        return ArmResult(
            answer=thread.markdown(),
            problem=thread.problem,
            cost_usd=str(thread.cost),
            wall_s=round(wall, 3),
            calls=thread.calls,
            estimated=thread.estimated,
            predicted_all_opus_usd=None if thread.all_opus is None else str(thread.all_opus),
        )

    async def _baseline(self, question: str) -> ArmResult:
        run_id = await self._ledger.evals.start_run(question)
        clock = time.monotonic()
        try:
            reply = await self._claude.baseline(question)
        except asyncio.CancelledError:
            await self._finish(run_id, "interrupted", clock)
            raise
        await self._ledger.runs.record_call(run_id, reply.call)
        await self._finish(run_id, "finished" if reply.value else "failed", clock)
        return ArmResult(
            answer=reply.value,
            problem=reply.problem,
            cost_usd=str(reply.call.cost_usd or Decimal(0)),
            wall_s=round(reply.call.latency_s, 3),
            calls=1,
            estimated=reply.call.usage.estimated,
        )

    async def _judge(
        self, question: str, orchestrate: ArmResult, baseline: ArmResult
    ) -> tuple[list[OrderVerdict], Decimal]:
        if orchestrate.answer is None or baseline.answer is None:
            return [], Decimal(0)  # nothing to compare: `fold` decides without a judge
        run_id = await self._ledger.evals.start_run(question)
        clock = time.monotonic()
        verdicts: list[OrderVerdict] = []
        cost = Decimal(0)
        orders = (("orchestrate", orchestrate.answer, baseline.answer),
                  ("baseline", baseline.answer, orchestrate.answer))  # fmt: skip
        try:
            for first, a, b in orders:
                reply = await self._claude.judge(question, a, b, model=self.judge_model)
                await self._ledger.runs.record_call(run_id, reply.call)
                cost += reply.call.cost_usd or Decimal(0)
                verdicts.append(_verdict(first, reply.value, reply.problem))
        except asyncio.CancelledError:
            await self._finish(run_id, "interrupted", clock)
            raise
        failed = any(v.problem for v in verdicts)
        await self._finish(run_id, "failed" if failed else "finished", clock)
        return verdicts, cost

    async def _finish(self, run_id: str, status: Any, clock: float) -> None:
        # Shielded: an interrupted eval still closes the run it was writing.
        await asyncio.shield(
            self._ledger.runs.finish_run(run_id, status, elapsed_s=time.monotonic() - clock)
        )


def _verdict(first: str, judgment: Judgment | None, problem: str | None) -> OrderVerdict:
    if judgment is None:
        return OrderVerdict(first, "", problem=problem or "no verdict")
    return OrderVerdict(
        first, judgment.winner, _scores(judgment.a), _scores(judgment.b), judgment.reason
    )


def _scores(s: Scores) -> dict[str, int]:
    return {"correct": s.correct, "complete": s.complete,
            "actionable": s.actionable, "concise": s.concise}  # fmt: skip


def fold(
    orchestrate: ArmResult, baseline: ArmResult, verdicts: list[OrderVerdict]
) -> tuple[Outcome | None, dict[str, float | None]]:
    """The question's outcome for orchestrate, and each arm's mean rubric score.

    An arm with no answer loses to one with an answer (both without: not judged). Else each
    order scores +1 for the orchestrate answer winning, -1 for it losing, 0 for a tie; the
    sum decides, so a win in one order and a tie in the other is a win, a win in each order
    for a different answer (position bias) a tie. A failed judge call leaves it unjudged.
    """
    quality: dict[str, float | None] = {arm: None for arm in ARMS}
    if orchestrate.answer is None or baseline.answer is None:
        if orchestrate.answer is None and baseline.answer is None:
            return None, quality
        return ("loss" if orchestrate.answer is None else "win"), quality
    if not verdicts or any(v.problem for v in verdicts):
        return None, quality
    points = 0
    scores: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for v in verdicts:
        second = "baseline" if v.first == "orchestrate" else "orchestrate"
        by_arm = {v.first: v.a, second: v.b}
        for arm in ARMS:
            scores[arm].append(sum(by_arm[arm].values()) / len(by_arm[arm]))
        if v.winner != "tie":
            winner = v.first if v.winner == "A" else second
            points += 1 if winner == "orchestrate" else -1
    for arm in ARMS:
        quality[arm] = round(sum(scores[arm]) / len(scores[arm]), 3)
    outcome: Outcome = "win" if points > 0 else "loss" if points < 0 else "tie"
    return outcome, quality


class _Thread:
    """The orchestrate run as a person reads its thread, rebuilt from its events."""

    def __init__(self) -> None:
        self.strategy: Strategy | None = None
        self.examples: dict[int, str] = {}
        self.failed: dict[int, str] = {}
        self.review: Review | None = None
        self.review_problem: str | None = None
        self.problem: str | None = None
        self.cost = Decimal(0)
        self.all_opus: Decimal | None = None
        self.calls = 0
        self.estimated = False
        self._records: list[CallRecord] = []

    def take(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            self.calls += 1
            self.estimated = self.estimated or event.call.usage.estimated
        elif isinstance(event, StrategyReady):
            self.strategy = event.strategy
        elif isinstance(event, ExampleReady):
            self.examples[event.index] = event.markdown
        elif isinstance(event, ExampleFailed):
            self.failed[event.index] = event.reason
        elif isinstance(event, ReviewReady):
            self.review = event.review
        elif isinstance(event, ReviewFailed):
            self.review_problem = event.reason
        elif isinstance(event, RunFinished | RunFailed):
            self.cost = event.cost.total_usd or Decimal(0)
            self.all_opus = event.cost.all_strategy_model_usd
            if isinstance(event, RunFailed):
                self.problem = event.reason

    def markdown(self) -> str | None:
        """The thread's text in reading order (None when the run wrote no strategy)."""
        s = self.strategy
        if s is None:
            return None
        parts = [f"# {s.title}", "", s.essence, ""]
        for i, component in enumerate(s.components):
            if i in self.examples:
                parts += [self.examples[i], ""]
            else:
                reason = self.failed.get(i, "not written")
                parts += [f"# {component.name}", "", f"(no example: {reason})", ""]
        if self.review is not None:
            parts += ["## Review", ""]
            parts += [
                f"- {_MARKS[c.verdict]} {c.component}: {c.reason}" for c in self.review.checks
            ]
            parts += ["", "**Gaps**", *(f"- {g}" for g in self.review.gaps)]
            parts += ["", "**Next steps**", *(f"- {n}" for n in self.review.next_steps)]
        elif self.review_problem:
            parts.append(f"(no review: {self.review_problem})")
        return "\n".join(parts).strip()
