"""The Slack side of one run: pipeline events in, messages in a thread out.

`ThreadRenderer` is the `emit` target for one run (besides the ledger). The thread's first
message already exists (posted before any model call, so its `ts` anchors the thread); the
strategy replaces it in place, each example is threaded under it the moment its event
arrives, and the review with its cost footer comes last, once the bill is known. A Slack
failure while rendering is logged and the run goes on: the ledger still records every call,
and one lost message must not cost the rest of the thread.
"""

from __future__ import annotations

import logging
from typing import assert_never

import blocks
from bot.core.events import (
    CallFinished,
    Event,
    ExampleFailed,
    ExampleReady,
    ReviewFailed,
    ReviewReady,
    RunFailed,
    RunFinished,
    RunStarted,
    StrategyReady,
)
from bot.core.models import Review, Strategy
from bot.core.pricing import CostSummary
from bot.slack.poster import SLACK_FAILURES, Poster, describe

log = logging.getLogger(__name__)


class ThreadRenderer:
    """Renders one run's events into its channel thread."""

    def __init__(
        self, poster: Poster, *, channel: str, thread_ts: str, asker_id: str, question: str
    ) -> None:
        self._poster = poster
        self.channel = channel
        self.thread_ts = thread_ts
        self._asker = asker_id
        self._question = question
        self._strategy: Strategy | None = None
        self._strategy_model = ""
        self._review: Review | None = None
        self._review_model = ""
        self._review_problem: str | None = None
        self._failed: list[str] = []
        self._examples_model = ""
        self._examples_posted = 0

    async def __call__(self, event: Event) -> None:
        try:
            await self._render(event)
        except SLACK_FAILURES as exc:
            log.error(
                "could not render %s in run thread %s: %s",
                type(event).__name__,
                self.thread_ts,
                describe(exc),
            )

    async def _render(self, event: Event) -> None:
        match event:
            case RunStarted(models=(_, examples_model, review_model)):
                self._examples_model, self._review_model = examples_model, review_model
            case CallFinished():
                pass  # calls are the ledger's business
            case StrategyReady(strategy=strategy, model=model):
                self._strategy, self._strategy_model = strategy, model
                n = len(strategy.components)
                await self._update_top(blocks.illustrating_status(self._examples_model, n))
            case ExampleReady(index=i, component=component, markdown=markdown, model=model):
                messages = blocks.example_messages(
                    index=i + 1,
                    total=self._total,
                    component=component,
                    markdown=markdown,
                    model=model,
                )
                await self._poster.post_all(self.channel, messages, thread_ts=self.thread_ts)
                await self._example_posted()
            case ExampleFailed(index=i, component=component, reason=reason, model=model):
                self._failed.append(component.name)
                message = blocks.example_failed_message(
                    index=i + 1,
                    total=self._total,
                    component=component,
                    reason=reason,
                    model=model,
                )
                await self._poster.post(self.channel, message, thread_ts=self.thread_ts)
                await self._example_posted()
            case ReviewReady(review=review, model=model):
                self._review, self._review_model = review, model
            case ReviewFailed(reason=reason, model=model):
                self._review_problem, self._review_model = reason, model
            case RunFinished(cost=cost, elapsed_s=elapsed):
                await self._finish(cost, elapsed)
            case RunFailed():
                await self._fail(event)
            case _:
                assert_never(event)

    async def _example_posted(self) -> None:
        self._examples_posted += 1
        if self._examples_posted == self._total and len(self._failed) < self._total:
            await self._update_top(blocks.reviewing_status(self._review_model))

    @property
    def _total(self) -> int:
        return len(self._strategy.components) if self._strategy else 0

    async def _finish(self, cost: CostSummary, elapsed: float) -> None:
        if self._review is not None:
            messages = blocks.review_message(
                review=self._review,
                model=self._review_model,
                cost=cost,
                elapsed_s=elapsed,
                failed_components=self._failed,
            )
        else:
            messages = blocks.review_failed_message(
                reason=self._review_problem or "no review",
                cost=cost,
                elapsed_s=elapsed,
                model=self._review_model or None,
            )
        await self._poster.post_all(self.channel, messages, thread_ts=self.thread_ts)
        await self._update_top(blocks.done_status(cost, elapsed))

    async def _fail(self, failed: RunFailed) -> None:
        cost, elapsed = failed.cost, failed.elapsed_s
        if failed.interrupted:
            interrupted = blocks.interrupted_message(cost=cost, elapsed_s=elapsed)
            await self._poster.post(self.channel, interrupted, thread_ts=self.thread_ts)
            await self._update_top(blocks.interrupted_status())
            return
        messages = blocks.run_failed_message(reason=failed.reason, cost=cost, elapsed_s=elapsed)
        await self._poster.post_all(self.channel, messages, thread_ts=self.thread_ts)
        await self._update_top(blocks.failed_status(failed.reason))

    async def bug(self) -> None:
        """The run died of a bug in our code: say so in the thread instead of going quiet."""
        problem = "an internal error stopped this run; it has been logged for the operators"
        try:
            await self._poster.post(
                self.channel, blocks.error_message(problem), thread_ts=self.thread_ts
            )
            await self._update_top(blocks.failed_status(problem))
        except SLACK_FAILURES as exc:
            log.error(
                "could not report the failure of run thread %s: %s", self.thread_ts, describe(exc)
            )

    async def _update_top(self, status: str) -> None:
        if self._strategy is None:
            message = blocks.status_message(
                asker_id=self._asker, question=self._question, status=status
            )
        else:
            message = blocks.strategy_message(
                asker_id=self._asker,
                question=self._question,
                strategy=self._strategy,
                model=self._strategy_model,
                status=status,
            )
        await self._poster.update(self.channel, self.thread_ts, message)
