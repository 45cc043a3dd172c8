"""A run's thread as a pure fold: `advance(state, event) -> (state, effects)`.

The thread's first message exists before any model is called (its `ts` anchors the
thread). From then on every pipeline event moves a `ThreadState` forward and says what to
do in Slack as `Effect`s: post messages under the thread, replace the top message (or offer
a draft of it, which the shell may coalesce), and set the thread's loading indicator. Slack
clears that indicator whenever the app posts in the thread, so it is set again after each
post while work remains, and cleared when the run ends. No I/O happens here, so the whole
rendering of a run is tested without Slack; the shell in `bot.slack.render` performs the
effects.

With progress on, the fold also keeps one task per model step (the strategy, each example,
the review) with what its calls cost, and says `ShowProgress` with the whole progress each
time a step starts or ends, and once more, closed, when the run ends: a stopped or failed
run ends every step still open in error, so no task is ever left spinning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    StrategyDraft,
    StrategyReady,
)
from bot.core.models import Review, Strategy
from bot.core.pricing import CostSummary
from bot.core.usage import CallRecord


@dataclass(frozen=True, slots=True)
class Post:
    """Post these messages, in order, as replies in the run's thread."""

    messages: tuple[blocks.OutboundMessage, ...]
    what: str  # for people, if Slack refuses: "example 2", "the review", …
    part: str  # the part of the run's thread these messages are, unique within it
    closes_run: bool = False  # its last message carries the run's cost footer


@dataclass(frozen=True, slots=True)
class UpdateTop:
    """Replace the thread's first message. An `informational` update (the thread's loading
    status already says it) is shown only when `chat.update`'s rate has room to spare."""

    message: blocks.OutboundMessage
    informational: bool = False


@dataclass(frozen=True, slots=True)
class DraftTop:
    """Show this draft in the first message if the update budget allows; a later draft or
    `UpdateTop` supersedes it, so skipping one loses nothing."""

    message: blocks.OutboundMessage


@dataclass(frozen=True, slots=True)
class SetStatus:
    """Set the thread's loading indicator; `None` clears it."""

    status: blocks.ThreadStatus | None


@dataclass(frozen=True, slots=True)
class ShowProgress:
    """Show the run's progress message as `progress` says (closing it if the run ended).
    Each supersedes the last, so the shell may coalesce them."""

    progress: blocks.ProgressView


Effect = Post | UpdateTop | DraftTop | SetStatus | ShowProgress
CLEAR = SetStatus(None)


@dataclass(frozen=True, slots=True)
class ThreadState:
    asker_id: str
    question: str
    strategy: Strategy | None = None
    strategy_model: str = ""
    examples_model: str = ""
    review_model: str = ""
    review: Review | None = None
    review_problem: str | None = None
    failed: tuple[str, ...] = ()
    examples_done: int = 0
    run_id: str | None = None  # names the run in its buttons (Stop, 👍/👎, Retry)
    over: bool = False  # the run has ended: its first message loses the Stop button
    progress: bool = False  # keep and show the progress message's steps
    steps: tuple[blocks.ProgressStep, ...] = ()
    web_link: str | None = None  # the run's web page, linked from its first message

    @property
    def total(self) -> int:
        return len(self.strategy.components) if self.strategy else 0


def advance(state: ThreadState, event: Event) -> tuple[ThreadState, tuple[Effect, ...]]:
    """The thread after `event`, and what to do in Slack to show it."""
    match event:
        case RunStarted(models=(strategy_model, examples_model, review_model)):
            state = replace(
                state,
                strategy_model=strategy_model,
                examples_model=examples_model,
                review_model=review_model,
            )
            planning = SetStatus(blocks.thread_planning(strategy_model))
            if not state.progress:
                return state, (planning,)
            plan = blocks.ProgressStep("plan", "plan", strategy_model, state="in_progress")
            state = replace(state, steps=(plan,))
            return state, (_progress(state), planning)
        case CallFinished(call=call):
            # Calls are the ledger's business; the progress only adds up what each step cost.
            return _costed(state, call), ()
        case StrategyDraft(strategy=draft, model=model):
            if state.strategy is not None:
                return state, ()  # a late draft must never hide the final strategy
            return state, (DraftTop(_draft(state, draft, model)),)
        case StrategyReady(strategy=strategy, model=model):
            state = replace(state, strategy=strategy, strategy_model=model)
            status = blocks.illustrating_status(state.examples_model, len(strategy.components))
            rest = blocks.strategy_overflow_messages(
                asker_id=state.asker_id, question=state.question, strategy=strategy, model=model
            )
            more = (Post(tuple(rest), "the rest of the strategy", "strategy-rest"),) if rest else ()
            state = _planned(state, strategy, model)
            return state, (top(state, status), *more, *_shown(state), _working(state))
        case ExampleReady(index=i, component=component, markdown=markdown, model=model):
            messages = blocks.example_messages(
                index=i + 1, total=state.total, component=component, markdown=markdown, model=model
            )
            state = _step(state, f"example-{i + 1}", to="complete")
            return _example_done(
                state, Post(tuple(messages), f"example {i + 1}", f"example-{i + 1}")
            )
        case ExampleFailed(index=i, component=component, reason=reason, model=model):
            state = replace(state, failed=(*state.failed, component.name))
            state = _step(state, f"example-{i + 1}", to="error", problem=reason)
            message = blocks.example_failed_message(
                index=i + 1,
                total=state.total,
                component=component,
                reason=reason,
                model=model,
                retry_run_id=state.run_id,
            )
            return _example_done(state, Post((message,), f"example {i + 1}", f"example-{i + 1}"))
        case ReviewReady(review=review, model=model):
            state = _step(state, "review", to="complete")
            return replace(state, review=review, review_model=model), _shown(state)
        case ReviewFailed(reason=reason, model=model):
            state = _step(state, "review", to="error", problem=reason)
            return replace(state, review_problem=reason, review_model=model), _shown(state)
        case RunFinished(cost=cost, elapsed_s=elapsed):
            state = replace(state, over=True)
            return state, (*_finished(state, cost, elapsed), *_closed(state, event))
        case RunFailed():
            state = replace(state, over=True)
            return state, (*_failed(state, event), *_closed(state, event))
        case _:
            assert_never(event)


def top(state: ThreadState, status: str) -> UpdateTop:
    """The first message with `status`: the question until a strategy exists, then it; a
    Stop button while the run works."""
    stop = None if state.over else state.run_id
    if state.strategy is None:
        message = blocks.status_message(
            asker_id=state.asker_id,
            question=state.question,
            status=status,
            stop_run_id=stop,
            web_link=state.web_link,
        )
    else:
        message = blocks.strategy_message(
            asker_id=state.asker_id,
            question=state.question,
            strategy=state.strategy,
            model=state.strategy_model,
            status=status,
            stop_run_id=stop,
            web_link=state.web_link,
        )
    return UpdateTop(message)


def _draft(state: ThreadState, draft: Strategy, model: str) -> blocks.OutboundMessage:
    return blocks.strategy_message(
        asker_id=state.asker_id,
        question=state.question,
        strategy=draft,
        model=model,
        status=blocks.drafting_status(model),
        stop_run_id=state.run_id,
        web_link=state.web_link,
    )


def _working(state: ThreadState) -> SetStatus:
    """The loading indicator for the work still to do once the strategy is in."""
    remaining = state.total - state.examples_done
    if remaining:
        return SetStatus(
            blocks.thread_illustrating(state.examples_model, remaining=remaining, total=state.total)
        )
    if len(state.failed) < state.total:
        return SetStatus(blocks.thread_reviewing(state.review_model))
    return CLEAR  # every example failed: nothing is being worked on any more


def _example_done(state: ThreadState, post: Post) -> tuple[ThreadState, tuple[Effect, ...]]:
    state = replace(state, examples_done=state.examples_done + 1)
    if state.examples_done == state.total and len(state.failed) < state.total:
        state = _step(state, "review", to="in_progress")  # it starts as the last returns
        reviewing = top(state, blocks.reviewing_status(state.review_model))
        informational = replace(reviewing, informational=True)
        return state, (post, informational, *_shown(state), _working(state))
    return state, (post, *_shown(state), _working(state))


def _finished(state: ThreadState, cost: CostSummary, elapsed: float) -> tuple[Effect, ...]:
    if state.review is not None:
        messages = blocks.review_message(
            review=state.review,
            model=state.review_model,
            cost=cost,
            elapsed_s=elapsed,
            failed_components=list(state.failed),
            feedback_run_id=state.run_id,
        )
    else:
        messages = blocks.review_failed_message(
            reason=state.review_problem or "no review",
            cost=cost,
            elapsed_s=elapsed,
            model=state.review_model or None,
        )
    delivered_nothing = state.total > 0 and len(state.failed) == state.total
    status = (
        blocks.nothing_delivered_status(state.failed, cost, elapsed)
        if delivered_nothing
        else blocks.done_status(cost, elapsed)
    )
    return Post(tuple(messages), "the review", "review", closes_run=True), top(state, status), CLEAR


def _failed(state: ThreadState, failed: RunFailed) -> tuple[Effect, ...]:
    cost, elapsed = failed.cost, failed.elapsed_s
    if failed.stopped_by is not None:
        notice = blocks.stopped_message(stopped_by=failed.stopped_by, cost=cost, elapsed_s=elapsed)
        stopped = top(state, blocks.stopped_status())
        return Post((notice,), "the stop notice", "stopped", closes_run=True), stopped, CLEAR
    if failed.interrupted:
        notice = blocks.interrupted_message(cost=cost, elapsed_s=elapsed)
        interrupted = top(state, blocks.interrupted_status())
        return (
            Post((notice,), "the interruption notice", "interrupted", closes_run=True),
            interrupted,
            CLEAR,
        )
    messages = blocks.run_failed_message(reason=failed.reason, cost=cost, elapsed_s=elapsed)
    failure = top(state, blocks.failed_status(failed.reason))
    return Post(tuple(messages), "the failure notice", "failed", closes_run=True), failure, CLEAR


# The progress message ------------------------------------------------------------------------

STEP_OF_ROLE = {"plan": "plan", "review": "review"}


def _progress(state: ThreadState) -> ShowProgress:
    return ShowProgress(blocks.ProgressView(state.steps))


def _shown(state: ThreadState) -> tuple[Effect, ...]:
    return (_progress(state),) if state.progress else ()


def _step(
    state: ThreadState,
    step_id: str,
    *,
    to: blocks.progress.StepState,
    problem: str = "",
    model: str | None = None,
) -> ThreadState:
    """`step_id` moved to `to` (a no-op without progress: there are no steps)."""
    steps = tuple(
        replace(step, state=to, problem=problem, model=model or step.model)
        if step.id == step_id
        else step
        for step in state.steps
    )
    return replace(state, steps=steps)


def _costed(state: ThreadState, call: CallRecord) -> ThreadState:
    """The step `call` belongs to, with its cost added (follow-up calls belong to none)."""
    if call.role == "example" and call.component_index is not None:
        step_id = f"example-{call.component_index + 1}"
    else:
        step_id = STEP_OF_ROLE.get(call.role, "")
    steps = tuple(
        step.with_call(call.cost_usd, estimated=call.usage.estimated)
        if step.id == step_id
        else step
        for step in state.steps
    )
    return replace(state, steps=steps)


def _planned(state: ThreadState, strategy: Strategy, model: str) -> ThreadState:
    """The strategy is done: one step per example (all started at once), then the review."""
    if not state.progress:
        return state
    state = _step(state, "plan", to="complete", model=model)
    total = len(strategy.components)
    examples = tuple(
        blocks.ProgressStep(
            f"example-{n}",
            "example",
            state.examples_model,
            state="in_progress",
            number=n,
            of=total,
            name=component.name,
        )
        for n, component in enumerate(strategy.components, start=1)
    )
    review = blocks.ProgressStep("review", "review", state.review_model)
    return replace(state, steps=(*state.steps, *examples, review))


def _closed(state: ThreadState, end: RunFinished | RunFailed) -> tuple[Effect, ...]:
    """The progress once the run has ended: every step still open ends in error, with who
    stopped the run or why it ended."""
    if not state.steps:  # without progress, or nothing shown yet
        return ()
    cost, elapsed = end.cost, end.elapsed_s
    if isinstance(end, RunFinished):
        nothing = state.total > 0 and len(state.failed) == state.total
        outcome: blocks.progress.Outcome = "nothing" if nothing else "done"
        problem, stopped_by = "ended before this step", None
    else:
        outcome = "stopped" if end.stopped_by else "interrupted" if end.interrupted else "failed"
        problem, stopped_by = end.reason, end.stopped_by
    steps = tuple(
        replace(step, state="error", problem=problem, stopped_by=stopped_by) if step.open else step
        for step in state.steps
    )
    view = blocks.ProgressView(
        steps,
        outcome=outcome,
        cost=cost,
        elapsed_s=elapsed,
        stopped_by=stopped_by,
        reason=end.reason if isinstance(end, RunFailed) else "",
    )
    return (ShowProgress(view),)


def abandoned(state: ThreadState, problem: str) -> tuple[Effect, ...]:
    """The progress of a run that died of a bug: its open steps end in error."""
    if not state.steps:
        return ()  # nothing was shown: nothing to close
    steps = tuple(
        replace(step, state="error", problem=problem) if step.open else step for step in state.steps
    )
    return (ShowProgress(blocks.ProgressView(steps, outcome="failed", reason=problem)),)
