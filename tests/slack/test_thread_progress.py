"""The progress message in the thread fold, without Slack: one task per model step, moved by
the run's events, with each step's model and cost, and closed when the run ends."""

from __future__ import annotations

from decimal import Decimal

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
from bot.core.models import Component, Strategy
from bot.core.usage import CallRecord, Role, TokenUsage
from bot.slack.thread import Effect, SetStatus, ShowProgress, ThreadState, abandoned, advance
from tests.blocks.blocks_sample_data import ASKER, HAIKU, HOSTILE, OPUS, SONNET, cost, review

PLAN = Strategy(
    title="API",
    essence="Resources first.",
    components=(Component("Resources", "Model them"), Component("Auth", "Tokens")),
)


def call(
    role: Role, usd: str | None, *, index: int | None = None, cut: bool = False
) -> CallFinished:
    usage = TokenUsage(10, 20, estimated=cut)
    model = {"plan": OPUS, "example": HAIKU, "review": SONNET, "followup": SONNET}[role]
    price = None if usd is None else Decimal(usd)
    return CallFinished(CallRecord(role, model, usage, price, 0.1, "ok", component_index=index))


def fold(events: list[Event], *, progress: bool = True) -> tuple[ThreadState, list[Effect]]:
    state = ThreadState(asker_id=ASKER, question="Design an API", progress=progress)
    done: list[Effect] = []
    for event in events:
        state, effects = advance(state, event)
        done.extend(effects)
    return state, done


def shown(effects: list[Effect]) -> list[blocks.ProgressView]:
    return [e.progress for e in effects if isinstance(e, ShowProgress)]


def states(view: blocks.ProgressView) -> dict[str, str]:
    return {step.id: step.state for step in view.steps}


def whole_run() -> list[Event]:
    return [
        RunStarted("Design an API", (OPUS, HAIKU, SONNET)),
        StrategyDraft(PLAN, OPUS),
        call("plan", "0.0100"),
        StrategyReady(PLAN, OPUS),
        call("example", "0.0002", index=1),
        ExampleReady(1, PLAN.components[1], "second", HAIKU),
        call("example", "0.0003", index=0),
        ExampleReady(0, PLAN.components[0], "first", HAIKU),
        call("review", "0.0040"),
        ReviewReady(review(), SONNET),
        RunFinished(cost(), 12.5),
    ]


def test_each_step_goes_in_progress_then_complete_with_its_model_and_cost() -> None:
    _, effects = fold(whole_run())
    views = shown(effects)
    assert [states(v) for v in views] == [
        {"plan": "in_progress"},
        {
            "plan": "complete",
            "example-1": "in_progress",
            "example-2": "in_progress",
            "review": "pending",
        },
        {
            "plan": "complete",
            "example-1": "in_progress",
            "example-2": "complete",
            "review": "pending",
        },
        # The review starts the moment the last example returns.
        {
            "plan": "complete",
            "example-1": "complete",
            "example-2": "complete",
            "review": "in_progress",
        },
        {
            "plan": "complete",
            "example-1": "complete",
            "example-2": "complete",
            "review": "complete",
        },
        {
            "plan": "complete",
            "example-1": "complete",
            "example-2": "complete",
            "review": "complete",
        },
    ]
    final = views[-1]
    assert final.outcome == "done" and final.elapsed_s == 12.5
    chunks = {c["id"]: c for c in blocks.progress_chunks(final) if c["type"] == "task_update"}
    assert chunks["plan"]["title"] == "Opus: strategy"
    assert chunks["plan"]["details"] == "$0.0100 · claude-opus-5-5"
    assert chunks["example-2"]["title"] == "Haiku: example 2 of 2 — Auth"
    assert chunks["example-2"]["details"] == "$0.0002 · claude-haiku-5-5"
    assert chunks["review"]["details"] == "$0.0040 · claude-sonnet-5-5"
    assert blocks.progress_summary(final).startswith("✅ Done in 12.5 s")


def test_the_progress_is_shown_before_the_loading_status_it_would_clear() -> None:
    _, effects = fold(whole_run()[:1])
    assert isinstance(effects[0], ShowProgress) and isinstance(effects[1], SetStatus)


def test_a_failed_example_ends_its_task_in_error_with_why() -> None:
    events: list[Event] = [
        *whole_run()[:4],
        call("example", "0.0001", index=0),
        ExampleFailed(0, PLAN.components[0], "the answer was cut off", HAIKU),
        call("example", "0.0002", index=1),
        ExampleReady(1, PLAN.components[1], "second", HAIKU),
        call("review", "0.0040"),
        ReviewReady(review(), SONNET),
        RunFinished(cost(), 9.0),
    ]
    _, effects = fold(events)
    final = shown(effects)[-1]
    assert states(final)["example-1"] == "error"
    failed = blocks.task_chunk(final.steps[1])
    assert failed["status"] == "error"
    assert failed["details"] == "the answer was cut off · $0.0001 · claude-haiku-5-5"
    assert "1 of 2 examples written" in blocks.progress_summary(final)


def test_when_every_example_failed_the_review_ends_in_error_and_the_run_is_not_done() -> None:
    events: list[Event] = [
        *whole_run()[:4],
        ExampleFailed(0, PLAN.components[0], "refused", HAIKU),
        ExampleFailed(1, PLAN.components[1], "refused", HAIKU),
        ReviewFailed("no example was written, so there is nothing to review", SONNET),
        RunFinished(cost(), 5.0),
    ]
    _, effects = fold(events)
    final = shown(effects)[-1]
    assert set(states(final).values()) == {"complete", "error"}
    assert states(final)["review"] == "error"
    assert final.outcome == "nothing"


def test_a_stop_ends_every_open_step_in_error_naming_who_stopped_it() -> None:
    events: list[Event] = [
        *whole_run()[:6],  # one example in, one still being written
        call("example", "0.0001", index=0, cut=True),  # the call cut off by the stop
        RunFailed("stopped", cost(), 4.0, interrupted=True, stopped_by="U0BOB"),
    ]
    _, effects = fold(events)
    final = shown(effects)[-1]
    assert states(final) == {
        "plan": "complete",
        "example-1": "error",
        "example-2": "complete",
        "review": "error",
    }
    stopped = blocks.task_chunk(final.steps[1])
    # The cut-off call's cost is an estimate, and says so.
    assert stopped["details"] == "stopped by <@U0BOB> · ≈$0.0001 · claude-haiku-5-5"
    assert blocks.task_chunk(final.steps[3])["details"] == "stopped by <@U0BOB>"
    assert final.outcome == "stopped"
    assert blocks.progress_summary(final).startswith("■ Stopped by <@U0BOB> after 4.0 s")


def test_a_failed_plan_ends_the_strategy_task_in_error() -> None:
    events: list[Event] = [
        RunStarted("q", (OPUS, HAIKU, SONNET)),
        call("plan", "0.0100"),
        RunFailed("Opus could not produce a usable strategy: refusal.", cost(), 3.0),
    ]
    _, effects = fold(events)
    final = shown(effects)[-1]
    assert states(final) == {"plan": "error"}
    assert final.outcome == "failed"
    assert "usable strategy" in blocks.task_chunk(final.steps[0])["details"]


def test_an_unpriced_call_makes_its_step_unpriced_not_free() -> None:
    events: list[Event] = [*whole_run()[:4], call("example", None, index=0)]
    state, _ = fold(events)
    assert blocks.task_chunk(state.steps[1])["status"] == "in_progress"
    state, _ = advance(state, ExampleReady(0, PLAN.components[0], "x", HAIKU))
    assert blocks.task_chunk(state.steps[1])["details"] == "unpriced · claude-haiku-5-5"


def test_component_names_are_inert_in_tasks_and_in_the_fallback_message() -> None:
    hostile = Strategy(title="t", essence="e", components=(Component(HOSTILE, "x"),))
    _, effects = fold([RunStarted("q", (OPUS, HAIKU, SONNET)), StrategyReady(hostile, OPUS)])
    title = blocks.task_chunk(shown(effects)[-1].steps[1])["title"]
    assert "<!channel>" not in title and "<@U123>" not in title and "@here" not in title
    message = blocks.progress_message(shown(effects)[-1])
    text = str(message.blocks)
    assert "<!channel>" not in text and "<@U123>" not in text and "@here " not in text


def test_without_progress_the_fold_says_nothing_of_it() -> None:
    _, effects = fold(whole_run(), progress=False)
    assert shown(effects) == []


def test_a_run_that_died_of_a_bug_closes_its_open_steps() -> None:
    state, _ = fold(whole_run()[:4])
    (effect,) = abandoned(state, "an internal error stopped this run")
    assert isinstance(effect, ShowProgress)
    assert not any(step.open for step in effect.progress.steps)
