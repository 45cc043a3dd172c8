"""The thread fold, without Slack: which messages a run's events produce, and in what order."""

from __future__ import annotations

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
from bot.core.models import Component, Strategy
from bot.core.usage import CallRecord, TokenUsage
from bot.slack.thread import (
    DraftTop,
    Effect,
    Post,
    SetStatus,
    ThreadState,
    UpdateTop,
    advance,
)
from tests.blocks.blocks_sample_data import ASKER, HAIKU, OPUS, SONNET, cost, review, strategy

PLAN = strategy(components=2)


def fold(events: list[Event]) -> tuple[ThreadState, list[Effect]]:
    state, done = ThreadState(asker_id=ASKER, question="Design an API"), []
    for event in events:
        state, effects = advance(state, event)
        done.extend(effects)
    return state, done


def kind(effect: Effect) -> str:
    match effect:
        case Post(what=what):
            return f"post {what}"
        case UpdateTop():
            return "update top"
        case DraftTop():
            return "draft top"
        case SetStatus(status=None):
            return "clear status"
        case SetStatus(status=status):
            return f"status: {status.status}"


def kinds(effects: list[Effect], *, statuses: bool = False) -> list[str]:
    return [kind(e) for e in effects if statuses or not isinstance(e, SetStatus)]


def started() -> list[Event]:
    return [RunStarted("Design an API", (OPUS, HAIKU, SONNET)), StrategyReady(PLAN, OPUS)]


def test_a_whole_run_posts_examples_as_they_come_then_the_review() -> None:
    call = CallRecord("example", HAIKU, TokenUsage(10, 20), None, 0.1, "ok")
    events = [
        *started(),
        CallFinished(call),
        ExampleReady(1, PLAN.components[1], "second", HAIKU),
        ExampleReady(0, PLAN.components[0], "first", HAIKU),
        ReviewReady(review(), SONNET),
        RunFinished(cost(), 12.5),
    ]
    state, effects = fold(events)
    assert kinds(effects) == [
        "update top",  # strategy replaces the status
        "post example 2",  # completion order, not component order
        "post example 1",
        "update top",  # "Sonnet is reviewing…" once every example is in
        "post the review",
        "update top",  # done, with the bill
    ]
    assert state.review is not None and state.examples_done == 2


def test_the_loading_status_follows_the_work_and_is_set_again_after_each_post() -> None:
    events = [
        *started(),
        ExampleReady(1, PLAN.components[1], "second", HAIKU),
        ExampleReady(0, PLAN.components[0], "first", HAIKU),
        ReviewReady(review(), SONNET),
        RunFinished(cost(), 12.5),
    ]
    _, effects = fold(events)
    assert kinds(effects, statuses=True) == [
        "status: Opus is planning…",
        "update top",
        "status: Haiku is writing 2 of 2 examples…",
        "post example 2",  # posting clears Slack's indicator…
        "status: Haiku is writing 1 of 2 examples…",  # …so it is set again
        "post example 1",
        "update top",
        "status: Sonnet is reviewing…",
        "post the review",
        "update top",
        "clear status",
    ]
    statuses = [e.status for e in effects if isinstance(e, SetStatus) and e.status]
    assert all(0 < len(s.loading_messages) <= 10 for s in statuses)


def test_a_failed_run_clears_the_loading_status() -> None:
    _, effects = fold([*started(), RunFailed("no", cost(), 2.0)])
    assert kinds(effects, statuses=True)[-1] == "clear status"


def test_drafts_show_the_strategy_being_written_until_the_final_one_lands() -> None:
    partial = Strategy("Design a RE", "", ())
    events: list[Event] = [
        RunStarted("Design an API", (OPUS, HAIKU, SONNET)),
        StrategyDraft(partial, OPUS),
        StrategyReady(PLAN, OPUS),
        StrategyDraft(Strategy("late", "", ()), OPUS),
    ]
    _, effects = fold(events)
    assert kinds(effects) == ["draft top", "update top"]  # the late draft changes nothing
    draft = effects[1]
    assert isinstance(draft, DraftTop)
    assert "Design a RE" in draft.message.text and "writing the strategy" in draft.message.text


def test_the_top_message_names_the_models_at_work() -> None:
    _, effects = fold(started())
    top = next(e for e in effects if isinstance(e, UpdateTop))
    assert HAIKU in top.message.text or "Haiku" in top.message.text


def test_failed_examples_are_posted_and_named_in_the_review() -> None:
    events = [
        *started(),
        ExampleFailed(0, PLAN.components[0], "timed out", HAIKU),
        ExampleReady(1, PLAN.components[1], "ok", HAIKU),
        ReviewReady(review(), SONNET),
        RunFinished(cost(), 3.0),
    ]
    state, effects = fold(events)
    assert state.failed == (PLAN.components[0].name,)
    assert kinds(effects)[1:3] == ["post example 1", "post example 2"]


def test_when_every_example_failed_no_reviewing_status_is_shown() -> None:
    events = [
        *started(),
        ExampleFailed(0, PLAN.components[0], "x", HAIKU),
        ExampleFailed(1, PLAN.components[1], "y", HAIKU),
    ]
    _, effects = fold(events)
    assert kinds(effects) == ["update top", "post example 1", "post example 2"]


def test_a_failed_review_still_posts_the_bill() -> None:
    events = [
        *started(),
        ExampleReady(0, PLAN.components[0], "a", HAIKU),
        ExampleReady(1, PLAN.components[1], "b", HAIKU),
        ReviewFailed("refused", SONNET),
        RunFinished(cost(), 3.0),
    ]
    _, effects = fold(events)
    assert kinds(effects)[-2:] == ["post the review", "update top"]


def test_an_interrupted_run_says_so_in_the_thread_and_on_top() -> None:
    _, effects = fold([*started(), RunFailed("restarting", cost(), 2.0, interrupted=True)])
    assert kinds(effects)[-2:] == ["post the interruption notice", "update top"]


def test_a_failed_plan_keeps_the_question_on_top() -> None:
    events: list[Event] = [
        RunStarted("Design an API", (OPUS, HAIKU, SONNET)),
        RunFailed("no usable strategy", cost(), 2.0),
    ]
    state, effects = fold(events)
    assert state.strategy is None
    assert kinds(effects) == ["post the failure notice", "update top"]
    top = [e for e in effects if isinstance(e, UpdateTop)][-1]
    assert "Design an API" in top.message.text


def test_a_plan_too_long_for_the_first_message_continues_once_in_the_thread() -> None:
    long_plan = Strategy(
        title="Long",
        essence="e",
        components=tuple(Component(f"Part {n}", "word " * 580) for n in range(1, 6)),
    )
    events: list[Event] = [
        RunStarted("Design an API", (OPUS, HAIKU, SONNET)),
        StrategyReady(long_plan, OPUS),
        ExampleFailed(0, long_plan.components[0], "boom", HAIKU),
    ]
    _, effects = fold(events)
    assert kinds(effects) == ["update top", "post the rest of the strategy", "post example 1"]


def test_a_run_where_every_example_failed_ends_without_done() -> None:
    events: list[Event] = [
        *started(),
        ExampleFailed(0, PLAN.components[0], "boom", HAIKU),
        ExampleFailed(1, PLAN.components[1], "bang", HAIKU),
        ReviewReady(review(), SONNET),
        RunFinished(cost(), 3.0),
    ]
    _, effects = fold(events)
    final = [e for e in effects if isinstance(e, UpdateTop)][-1]
    shown = final.message.text + str(final.message.blocks)
    assert "Done" not in shown and "No example could be written (2 of 2 failed" in shown
    assert PLAN.components[0].name.strip() in shown and "spent in 3.0 s" in shown
