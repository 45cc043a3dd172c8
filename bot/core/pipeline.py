"""The orchestration pipeline: plan → parallel examples → review, told as events.

`Pipeline.run(question, emit=...)` pushes `bot.events` to `emit` as things happen: drafts of
the strategy while the plan streams (parsed from the partial JSON), the strategy once the
plan is usable (after at most one repair), each example or its failure
the moment its call returns (completion order, from inside an `asyncio.TaskGroup`), the
review, and the run's bill. Every model call is emitted as `CallFinished` before the event
built from it, so a listener can write it down before anything else happens. A global
semaphore caps concurrent model calls across runs. One failed example does not sink the
run; a failed plan ends it with a reason a user can act on. A call cut off mid-stream (a
dropped connection, a timeout) fails its own step with its estimated usage. A `RunStop`
ends a run at once: the calls in flight are closed (the API stops generating, so nothing
more is billed), their usage so far is emitted, estimated, and the run ends as
`RunFailed` with the stop's reason. If the run's task is cancelled instead (a shutdown),
the same happens and the cancellation goes on. This module knows nothing of Slack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import Protocol, TypeVar

from bot.core import prompts
from bot.core.budget import CallBudget, CallRefused
from bot.core.claude import (
    MAX_COMPONENTS,
    CancelSink,
    Claude,
    Reply,
    efforts,
    repair_max_tokens,
)
from bot.core.draft import parse_draft
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
    StrategyDraft,
    StrategyReady,
)
from bot.core.models import Component, Review, Strategy
from bot.core.pricing import CostSummary, PriceTable, summarize
from bot.core.usage import CallRecord, TokenUsage
from bot.settings import Settings

Emit = Callable[[Event], Awaitable[None]]
T = TypeVar("T")


class Step(Protocol):
    """One model call's step, reserved in the run's order: `await step(call)` makes the
    call, or hands back what the same step returned (or raised) before a restart."""

    async def __call__(self, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]: ...


class Steps(Protocol):
    """Where a run's model calls are made. `reserve` is called synchronously, in an order
    that depends only on what earlier steps returned (the plan, then each example by
    index, then the review), never on which parallel call finishes first: a durable engine
    numbers its checkpoints by it."""

    def reserve(self, name: str) -> Step: ...


class _Now:
    async def __call__(self, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        return await call()


class Immediate:
    """Steps that are just calls: nothing is kept (the eval, the pipeline's own tests)."""

    def reserve(self, name: str) -> Step:
        return _Now()


# Generous bounds for the worst case: a strategy's text and a JSON schema, in tokens.
STRATEGY_TOKENS = 1500
SCHEMA_TOKENS = 500


def _tokens(*texts: str) -> int:
    # ~4 characters a token in English; count 3 to stay on the safe side of a budget.
    return sum(len(t) for t in texts) // 3 + 1


INTERRUPTED_REASON = "the run was interrupted before it finished (the bot was restarting)."


class RunStop:
    """Asks one run to stop now; `reason` is what its `RunFailed` tells the user."""

    def __init__(self) -> None:
        self._requested = asyncio.Event()
        self.reason = ""
        self.by: str | None = None
        self.suspended = False

    def stop(self, reason: str, *, by: str | None = None) -> None:
        """Stop the run (again is harmless: the first reason stands); `by` names who asked,
        for the run's `RunFailed.stopped_by`."""
        if not self._requested.is_set():
            self.reason = reason
            self.by = by
            self._requested.set()

    def suspend(self) -> None:
        """Stop the run for a shutdown it will resume after: its calls in flight are closed
        and recorded, and it ends with no ending of its own (the run stays open)."""
        self.suspended = True
        self.stop("the bot is restarting")

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    async def wait(self) -> None:
        await self._requested.wait()


class Pipeline:
    """Runs questions through the three roles; shared by every run of one process."""

    def __init__(self, claude: Claude, *, settings: Settings, prices: PriceTable) -> None:
        self._claude = claude
        self._settings = settings
        self._prices = prices
        self._slots = asyncio.Semaphore(settings.max_concurrent_calls)

    def worst_case_usd(self, question: str, *, thread: str = "") -> Decimal | None:
        """The most one run of `question` can cost at list prices (every call at its
        `max_tokens` for its effort, a plan repair with its extra room, six components);
        None if a model is unpriced. `thread` is a discussion the plan reads besides the
        question."""
        s, prices, limit = self._settings, self._prices, self._claude.limit
        effort = efforts(s)
        plan_out = limit("plan", s.strategy_model, effort["plan"])
        example_out = limit("example", s.examples_model, effort["example"])
        review_out = limit("review", s.review_model, effort["review"])
        repair_out = repair_max_tokens(plan_out, ceiling=self._claude.ceiling(s.strategy_model))
        plan_in = _tokens(prompts.PLAN_SYSTEM, prompts.DISCUSSION_NOTE, thread, question)
        plan_in += SCHEMA_TOKENS
        example_in = _tokens(prompts.EXAMPLE_SYSTEM, question) + STRATEGY_TOKENS
        review_in = example_in + MAX_COMPONENTS * example_out + SCHEMA_TOKENS
        costs = [
            prices.cost(s.strategy_model, TokenUsage(plan_in, plan_out)),
            prices.cost(s.strategy_model, TokenUsage(plan_in, repair_out)),
            prices.cost(s.examples_model, TokenUsage(example_in, example_out)),
            prices.cost(s.review_model, TokenUsage(review_in, review_out)),
        ]
        if any(c is None for c in costs):
            return None
        plan, repair, example, review = (c for c in costs if c is not None)
        return plan + repair + MAX_COMPONENTS * example + review

    async def run(
        self,
        question: str,
        *,
        emit: Emit,
        stop: RunStop | None = None,
        thread: str | None = None,
        budget: CallBudget | None = None,
        steps: Steps | None = None,
        resumable: bool = False,
    ) -> None:
        """Run one question to its end (or until `stop`), emitting every event; raises only
        on a bug or when cancelled. `thread` (`prompts.thread_context`) is a discussion the
        strategy builds on. With `budget`, every call holds its worst case first: a refused
        plan ends the run (`RunFailed` with the refusal's reason), a refused example is a
        failed example, a refused review a failed review. `steps` makes each model call
        (default: at once, nothing kept). A `resumable` run (its steps are kept by a durable
        engine) that is cancelled or suspended records the calls it cut off and raises
        `RunSuspended` (or the cancellation) with no ending: it will be resumed."""
        run = _Run(self, question, emit, thread, budget, steps or Immediate(), resumable)
        await run.execute(stop)

    def example_worst_case_usd(self, question: str) -> Decimal | None:
        """The most one more example call for `question` can cost (None if unpriced)."""
        tokens = _tokens(prompts.EXAMPLE_SYSTEM, question) + STRATEGY_TOKENS
        model = self._settings.examples_model
        out = self._claude.limit("example", model, efforts(self._settings)["example"])
        return self._prices.cost(model, TokenUsage(tokens, out))

    async def example_again(
        self,
        question: str,
        strategy: Strategy,
        index: int,
        *,
        emit: Emit,
        budget: CallBudget | None = None,
        steps: Steps | None = None,
    ) -> None:
        """Illustrate component `index` of `strategy` once more (a Retry): its call, then
        `ExampleReady` or `ExampleFailed`, then `RunFinished` with the bill of that call."""
        run = _Run(self, question, emit, budget=budget, steps=steps)
        try:
            await run._example(
                strategy,
                index,
                component=strategy.components[index],
                returned=_ignore,
                cache=False,
                step=run.steps.reserve(f"example.{index}"),
            )
        except asyncio.CancelledError:
            await run._interrupted(INTERRUPTED_REASON)
            raise
        await self.emit_finished(run)

    async def emit_finished(self, run: _Run) -> None:
        await run.emit(RunFinished(run._bill(), run._elapsed()))

    def bill(self, calls: list[CallRecord]) -> CostSummary:
        """What `calls` (a follow-up's one call) cost, priced as a run's footer prices them."""
        return summarize(calls, prices=self._prices, strategy_model=self._settings.strategy_model)

    async def followup_answer(
        self,
        thread: str,
        request: str,
        *,
        on_cancel: CancelSink | None = None,
        budget: CallBudget | None = None,
    ) -> Reply[str]:
        """The review model answers a follow-up in a thread (under the global call cap);
        `CallRefused` when `budget` has no room for the call."""
        async with self._slots:
            return await self._claude.followup_answer(
                thread, request, on_cancel=on_cancel, budget=budget
            )

    async def followup_example(
        self,
        thread: str,
        component: Component,
        *,
        index: int | None,
        on_cancel: CancelSink | None = None,
        budget: CallBudget | None = None,
    ) -> Reply[str]:
        """The examples model redoes (`index`) or adds (None) one component; `CallRefused`
        when `budget` has no room for the call."""
        async with self._slots:
            return await self._claude.followup_example(
                thread, component, index=index, on_cancel=on_cancel, budget=budget
            )

    def followup_worst_case_usd(self, thread: str, *, model: str) -> Decimal | None:
        """The most one follow-up call on `model` can cost: the thread in, `max_tokens` out."""
        system = prompts.FOLLOWUP_SYSTEM + prompts.EXAMPLE_SYSTEM
        effort = efforts(self._settings)
        limit = max(
            self._claude.limit("example", model, effort["example"]),
            self._claude.limit("followup", model, effort["followup"]),
        )
        return self._prices.cost(model, TokenUsage(_tokens(system, thread) + 200, limit))


class RunSuspended(Exception):
    """A resumable run was suspended for a shutdown: it stays open, to be resumed."""


class _Stopped(Exception):
    """The budget refused the plan: the run ends with `reason`, having spent nothing more."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ignore(index: int, outcome: prompts.ExampleOutcome) -> None:
    """An example's outcome nobody waits for (a retried component has no review)."""


class _Run:
    """One run's state: the calls it made, so its bill is complete whatever happens."""

    def __init__(
        self,
        pipeline: Pipeline,
        question: str,
        emit: Emit,
        thread: str | None = None,
        budget: CallBudget | None = None,
        steps: Steps | None = None,
        resumable: bool = False,
    ) -> None:
        self.p = pipeline
        self.steps: Steps = steps or Immediate()
        self.resumable = resumable
        self.question = question
        self.thread = thread
        self.emit = emit
        self.budget = budget
        self.calls: list[CallRecord] = []
        self.cut_off: list[CallRecord] = []  # calls interrupted by cancellation
        self.draft: Strategy | None = None  # the strategy as last shown while it streamed
        self.started = time.monotonic()

    async def execute(self, stop: RunStop | None) -> None:
        await self.emit(RunStarted(self.question, self.p._settings.models))
        try:
            stopped = await self._stages_until(stop)
        except _Stopped as refused:
            await self._fail(refused.reason)
            return
        except asyncio.CancelledError:
            if self.resumable:
                await self._cut_off_recorded()
            else:
                await self._interrupted(INTERRUPTED_REASON)
            raise
        if stopped is not None and stop is not None and stop.suspended and self.resumable:
            await self._cut_off_recorded()
            raise RunSuspended(stopped)
        if stopped is not None:
            await self._interrupted(stopped, stopped_by=stop.by if stop else None)

    async def _stages_until(self, stop: RunStop | None) -> str | None:
        """Run the stages; if `stop` comes first, cancel them and return its reason."""
        if stop is None:
            await self._stages()
            return None
        if stop.requested:
            return stop.reason
        stages = asyncio.create_task(self._stages())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait((stages, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not stages.done():
                stages.cancel()
            # Wait for the stages to unwind (their calls close their streams and hand over
            # what they spent) even if this task is itself being cancelled meanwhile.
            await asyncio.wait((stages,))
        if stages.cancelled():
            return stop.reason
        stages.result()  # a bug in the stages raises here
        return None

    async def _stages(self) -> None:
        strategy = await self._plan()
        if strategy is None:
            return
        await self.emit(StrategyReady(strategy, self.p._settings.strategy_model))
        review = await self._examples_then_review(strategy)
        model = self.p._settings.review_model
        if review is None:
            problem = "no example was written, so there is nothing to review"
            await self.emit(ReviewFailed(problem, model))
        elif isinstance(review, str):  # the budget had no room for the review call
            await self.emit(ReviewFailed(review, model))
        elif review.value is None:
            await self.emit(ReviewFailed(review.problem or "unknown failure", model))
        else:
            await self.emit(ReviewReady(review.value, model))
        await self.emit(RunFinished(self._bill(), self._elapsed()))

    async def _plan(self) -> Strategy | None:
        try:
            return await self._planned()
        except CallRefused as refused:
            raise _Stopped(refused.reason) from None

    async def _planned(self) -> Strategy | None:
        claude, model = self.p._claude, self.p._settings.strategy_model
        reply = await self._limited(
            self.steps.reserve("plan"),
            partial(
                claude.plan,
                self.question,
                thread=self.thread,
                on_cancel=self.cut_off.append,
                on_text=self._drafted,
                budget=self.budget,
            ),
        )
        await self._record(reply.call)
        if reply.value is None and reply.call.outcome == "invalid":
            # One repair: tell the model what was wrong. API errors are not repaired: the
            # SDK has already retried those.
            repair = partial(
                claude.plan,
                self.question,
                repairing=reply,
                thread=self.thread,
                on_cancel=self.cut_off.append,
                on_text=self._drafted,
                budget=self.budget,
            )
            reply = await self._limited(self.steps.reserve("plan.repair"), repair)
            await self._record(reply.call)
        if reply.value is None:
            await self._fail(f"{model} could not produce a usable strategy: {reply.problem}.")
        return reply.value

    async def _drafted(self, text: str) -> None:
        """The plan's answer so far: emitted as a draft whenever what it says has changed."""
        draft = parse_draft(text)
        if draft is not None and draft != self.draft:
            self.draft = draft
            await self.emit(StrategyDraft(draft, self.p._settings.strategy_model))

    async def _examples_then_review(self, strategy: Strategy) -> Reply[Review] | str | None:
        """Examples in parallel, each emitted as its call returns; the review call starts
        the moment the last example call returns, while the last examples may still be
        rendering. None when no example was written (there is nothing to review); the
        refusal's reason when the budget had no room for the review."""
        outcomes: dict[int, prompts.ExampleOutcome] = {}
        all_returned = asyncio.Event()

        def returned(index: int, outcome: prompts.ExampleOutcome) -> None:
            outcomes[index] = outcome
            if len(outcomes) == len(strategy.components):
                all_returned.set()

        components = list(enumerate(strategy.components))
        # Each example's step is reserved here, by index, before any call starts: the
        # order a durable engine numbers them in cannot depend on which returns first.
        steps = {i: self.steps.reserve(f"example.{i}") for i, _ in components}
        # The shared prefix is always marked (below the model's minimum the API simply
        # does not cache it); the others wait for a first writer only where the prefix is
        # long enough for the read to pay for that wait (BENCHMARKS.md, prompt caching).
        cache = True
        async with asyncio.TaskGroup() as group:
            if self.p._claude.cacheable(self.question, strategy):
                # Parallel calls fired at once would each write the cache: let the first
                # one write it, and start the rest once the API has begun answering it.
                first_started = asyncio.Event()
                index, component = components.pop(0)
                group.create_task(
                    self._example(
                        strategy,
                        index,
                        component=component,
                        returned=returned,
                        cache=True,
                        started=first_started,
                        step=steps[index],
                    )
                )
                await first_started.wait()
            for index, component in components:
                group.create_task(
                    self._example(
                        strategy,
                        index,
                        component=component,
                        returned=returned,
                        cache=cache,
                        step=steps[index],
                    )
                )
            await all_returned.wait()
            ordered = [outcomes[i] for i in sorted(outcomes)]
            if any(o.markdown is not None for o in ordered):
                step = self.steps.reserve("review")
                review = group.create_task(self._review(strategy, ordered, step))
        if any(o.markdown is not None for o in ordered):
            return review.result()
        return None

    async def _example(
        self,
        strategy: Strategy,
        index: int,
        *,
        component: Component,
        returned: Callable[[int, prompts.ExampleOutcome], None],
        cache: bool,
        started: asyncio.Event | None = None,
        step: Step | None = None,
    ) -> None:
        call = partial(
            self.p._claude.example,
            self.question,
            strategy,
            component,
            index=index,
            cache=cache,
            started=started,
            on_cancel=self.cut_off.append,
            budget=self.budget,
        )
        model = self.p._settings.examples_model
        try:
            reply = await self._limited(step or _Now(), call)
        except CallRefused as refused:
            # A failed step like any other (Retry can redo it once the budget has room);
            # the other examples ask the budget for themselves.
            if started is not None:
                started.set()  # the examples waiting for the cache writer may go
            returned(index, prompts.ExampleOutcome(component, None, refused.reason))
            await self.emit(ExampleFailed(index, component, refused.reason, model))
            return
        if started is not None:
            started.set()  # a call replayed from its step never started streaming
        if reply.value is None:
            reason = reply.problem or "unknown failure"
            returned(index, prompts.ExampleOutcome(component, None, reason))
            await self._record(reply.call)
            await self.emit(ExampleFailed(index, component, reason, model))
        else:
            returned(index, prompts.ExampleOutcome(component, reply.value))
            await self._record(reply.call)
            await self.emit(ExampleReady(index, component, reply.value, model))

    async def _review(
        self, strategy: Strategy, outcomes: list[prompts.ExampleOutcome], step: Step
    ) -> Reply[Review] | str:
        call = partial(
            self.p._claude.review,
            self.question,
            strategy,
            outcomes,
            on_cancel=self.cut_off.append,
            budget=self.budget,
        )
        try:
            reply = await self._limited(step, call)
        except CallRefused as refused:
            return refused.reason
        await self._record(reply.call)
        return reply

    async def _limited(self, step: Step, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        # The call is made only once a slot is held: a run cancelled while it waits leaves
        # no coroutine behind that was never awaited, and a call holds its budget only
        # while it can run. A step replayed after a restart takes no slot.
        async def limited() -> Reply[T]:
            async with self.p._slots:
                return await call()

        return await step(limited)

    async def _record(self, call: CallRecord) -> None:
        self.calls.append(call)
        # Shielded: a run cancelled while its call is being written down must not lose the
        # record half-way (the ledger would roll it back and the tokens go unrecorded).
        await asyncio.shield(self.emit(CallFinished(call)))

    async def _fail(
        self, reason: str, *, interrupted: bool = False, stopped_by: str | None = None
    ) -> None:
        bill, elapsed = self._bill(), self._elapsed()
        await self.emit(RunFailed(reason, bill, elapsed, interrupted, stopped_by))

    async def _interrupted(self, reason: str, *, stopped_by: str | None = None) -> None:
        await self._cut_off_recorded()
        await self._fail(reason, interrupted=True, stopped_by=stopped_by)

    async def _cut_off_recorded(self) -> None:
        """Record what the calls closed mid-stream had spent (estimated)."""
        for call in self.cut_off:
            await self._record(call)
        self.cut_off.clear()

    def _bill(self) -> CostSummary:
        return summarize(
            self.calls, prices=self.p._prices, strategy_model=self.p._settings.strategy_model
        )

    def _elapsed(self) -> float:
        return time.monotonic() - self.started
