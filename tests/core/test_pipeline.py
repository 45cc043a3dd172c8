"""The pipeline against the Claude sandbox over HTTP, through the real anthropic SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal

import pytest

from bot.core.budget import CallRefused
from bot.core.claude import (
    MAX_OUTPUT_TOKENS,
    THINKING_ROOM,
    VISIBLE_TOKENS,
    Claude,
    max_tokens_for,
    repair_max_tokens,
)
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
from bot.core.models import Strategy
from bot.core.pipeline import Pipeline, RunStop
from bot.core.pricing import PriceTable
from bot.core.usage import CallRecord, TokenUsage
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel, ModelLatency
from bot.settings import Settings

QUESTION = "Design a REST API for a social network"


@pytest.fixture
async def claude_sandbox() -> AsyncIterator[ClaudeSandbox]:
    async with ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as sandbox:
        yield sandbox


def settings_for(sandbox: ClaudeSandbox, **overrides: object) -> Settings:
    base = Settings(
        anthropic_api_key=sandbox.api_key,
        anthropic_base_url=sandbox.base_url,
        call_timeout_s=10.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


class Recorder:
    """An `emit` that keeps every event with the moment it arrived."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.times: list[float] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@pytest.fixture
def prices() -> PriceTable:
    return PriceTable.load()


def offline_claude(prices: PriceTable) -> Claude:
    """A client for the arithmetic that needs no request (limits, worst cases)."""
    return Claude(None, settings=Settings(), price=prices.cost)  # type: ignore[arg-type]


async def run_pipeline(
    sandbox: ClaudeSandbox, prices: PriceTable, question: str = QUESTION, **overrides: object
) -> Recorder:
    settings = settings_for(sandbox, **overrides)
    claude = Claude.from_settings(settings, price=prices.cost)
    recorder = Recorder()
    try:
        await Pipeline(claude, settings=settings, prices=prices).run(question, emit=recorder)
    finally:
        await claude.aclose()
    return recorder


async def test_events_arrive_in_order_plan_examples_review_finish(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder = await run_pipeline(claude_sandbox, prices)

    kinds = [k for k in recorder.kinds() if k not in ("CallFinished", "StrategyDraft")]
    strategy = recorder.of(StrategyReady)[0]
    assert isinstance(strategy, StrategyReady)
    n = len(strategy.strategy.components)
    assert 2 <= n <= 6
    assert kinds == [
        "RunStarted",
        "StrategyReady",
        *["ExampleReady"] * n,
        "ReviewReady",
        "RunFinished",
    ]
    # Each call is emitted before the event built from its answer.
    for i, event in enumerate(recorder.events):
        if isinstance(event, StrategyReady | ExampleReady | ReviewReady):
            role = {StrategyReady: "plan", ExampleReady: "example", ReviewReady: "review"}
            index = event.index if isinstance(event, ExampleReady) else None
            assert any(
                isinstance(e, CallFinished)
                and e.call.role == role[type(event)]
                and e.call.component_index == index
                for e in recorder.events[:i]
            )
    assert isinstance(recorder.events[0], RunStarted)


async def test_the_strategy_is_drafted_as_it_streams_before_the_plan_call_returns(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder = await run_pipeline(claude_sandbox, prices)

    plan = next(r for r in claude_sandbox.requests if r.role == "plan")
    drafts = [
        (e, t)
        for e, t in zip(recorder.events, recorder.times, strict=True)
        if isinstance(e, StrategyDraft)
    ]
    final = recorder.of(StrategyReady)[0]
    assert isinstance(final, StrategyReady)
    assert len(drafts) >= 3
    first, first_at = drafts[0]
    # Drafted while the answer streams: before the plan call has returned (its record), and
    # no later than the stand-in's last byte give or take the loop's turn (on loopback the
    # text follows the hidden thinking within milliseconds, so a strict `<` raced).
    plan_returned = next(
        i
        for i, e in enumerate(recorder.events)
        if isinstance(e, CallFinished) and e.call.role == "plan"
    )
    assert recorder.events.index(first) < plan_returned
    assert first_at < plan.finished + 0.05
    assert first.strategy.title and not first.strategy.components
    # The draft grows towards the final strategy, and ends up saying the same thing.
    last = drafts[-1][0].strategy
    assert [c.name for c in last.components] == [c.name for c in final.strategy.components]
    assert last.title.strip() == final.strategy.title
    ready_at = recorder.events.index(final)
    assert all(recorder.events.index(d) < ready_at for d, _ in drafts)


async def test_first_example_is_emitted_before_the_slowest_example_call_returns(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="example", delay_s=1.5, times=1)

    recorder = await run_pipeline(claude_sandbox, prices)

    examples = [r for r in claude_sandbox.requests if r.role == "example"]
    slowest_done = max(r.finished for r in examples)
    first_example_at = next(
        t
        for e, t in zip(recorder.events, recorder.times, strict=True)
        if isinstance(e, ExampleReady)
    )
    assert first_example_at < slowest_done - 1.0
    # ...and the examples ran in parallel: the run took about one slow call, not n.
    starts = sorted(r.started for r in examples)
    assert starts[-1] - starts[0] < 0.5


async def test_an_example_that_always_fails_leaves_the_others_and_the_review_intact(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    first = await run_pipeline(claude_sandbox, prices)
    strategy = first.of(StrategyReady)[0]
    assert isinstance(strategy, StrategyReady)
    doomed = strategy.strategy.components[1].name
    claude_sandbox.add_rule(role="example", contains=f'name="{doomed}"', fault="server_error")

    recorder = await run_pipeline(claude_sandbox, prices, anthropic_max_retries=1)

    failed = recorder.of(ExampleFailed)
    assert [e.component.name for e in failed if isinstance(e, ExampleFailed)] == [doomed]
    assert len(recorder.of(ExampleReady)) == len(strategy.strategy.components) - 1
    review = recorder.of(ReviewReady)[0]
    assert isinstance(review, ReviewReady)
    verdicts = {c.component: c.verdict for c in review.review.checks}
    assert verdicts[doomed] == "problem"
    assert isinstance(recorder.events[-1], RunFinished)
    # The failed call (and its SDK retry) is still on the bill, as an error with no tokens.
    errors = [
        e.call
        for e in recorder.of(CallFinished)
        if isinstance(e, CallFinished) and e.call.outcome == "error"
    ]
    assert len(errors) == 1 and errors[0].usage == TokenUsage()


async def test_an_overloaded_plan_succeeds_through_the_sdk_retries(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="plan", fault="overloaded", times=1, retry_after_s=0)

    recorder = await run_pipeline(claude_sandbox, prices)

    assert isinstance(recorder.events[-1], RunFinished)
    plans = [r for r in claude_sandbox.requests if r.role == "plan"]
    assert [r.status for r in plans] == [529, 200]
    plan_calls = [
        e
        for e in recorder.of(CallFinished)
        if isinstance(e, CallFinished) and e.call.role == "plan"
    ]
    assert len(plan_calls) == 1 and plan_calls[0].call.outcome == "ok"


async def test_an_invalid_plan_is_repaired_once(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="plan", fault="invalid_output", times=1)

    recorder = await run_pipeline(claude_sandbox, prices)

    outcomes = [
        e.call.outcome
        for e in recorder.of(CallFinished)
        if isinstance(e, CallFinished) and e.call.role == "plan"
    ]
    assert outcomes == ["invalid", "ok"]
    repair = [r for r in claude_sandbox.requests if r.role == "plan"][1]
    assert "could not be used" in str(repair.body["messages"])
    assert isinstance(recorder.events[-1], RunFinished)


async def test_a_plan_invalid_twice_fails_the_run_clearly_and_calls_no_other_model(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="plan", fault="invalid_output")

    recorder = await run_pipeline(claude_sandbox, prices)

    failed = recorder.events[-1]
    assert isinstance(failed, RunFailed)
    assert "could not produce a usable strategy" in failed.reason
    assert "expected format" in failed.reason
    assert [r.role for r in claude_sandbox.requests] == ["plan", "plan"]
    # The two invalid answers still cost money, and the bill says so.
    assert failed.cost.total_usd is not None and failed.cost.total_usd > 0


async def test_a_refused_plan_fails_with_the_reason(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="plan", fault="refusal")

    recorder = await run_pipeline(claude_sandbox, prices)

    failed = recorder.events[-1]
    assert isinstance(failed, RunFailed) and "declined" in failed.reason


async def test_the_bill_equals_the_usage_the_api_reported_at_list_prices(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder = await run_pipeline(claude_sandbox, prices)

    finished = recorder.events[-1]
    assert isinstance(finished, RunFinished)
    expected = Decimal(0)
    all_opus = Decimal(0)
    for request in claude_sandbox.requests:
        usage = request.usage
        assert usage is not None
        tokens = TokenUsage(
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_write_5m_tokens=usage.get("cache_creation_input_tokens") or 0,
            cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
        )
        cost = prices.cost(request.model, tokens)
        opus = prices.cost("claude-opus-5-5", tokens)
        assert cost is not None and opus is not None
        expected += cost
        all_opus += opus
    assert finished.cost.total_usd == expected
    assert finished.cost.all_strategy_model_usd == all_opus
    saving = finished.cost.saving_pct
    assert saving is not None and Decimal(0) < saving < Decimal(100)
    # Thinking is billed: every 5.x call reported thinking inside its output tokens.
    calls = [e.call for e in recorder.of(CallFinished) if isinstance(e, CallFinished)]
    assert all(c.usage.thinking_tokens > 0 for c in calls)
    assert all(c.usage.output_tokens > c.usage.thinking_tokens for c in calls)


async def test_an_unknown_model_is_unpriced_not_free(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder = await run_pipeline(claude_sandbox, prices, review_model="claude-sandbox-review")

    finished = recorder.events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.cost.total_usd is None
    assert finished.cost.unpriced_models == ("claude-sandbox-review",)


async def test_concurrent_model_calls_never_exceed_the_cap(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="example", delay_s=0.3)

    await run_pipeline(claude_sandbox, prices, max_concurrent_calls=2)

    examples = [r for r in claude_sandbox.requests if r.role == "example"]
    assert len(examples) >= 3
    moments = sorted([(r.started, 1) for r in examples] + [(r.finished, -1) for r in examples])
    level = peak = 0
    for _, step in moments:
        level += step
        peak = max(peak, level)
    assert peak == 2


@pytest.mark.parametrize(
    ("model", "repeats"),
    [
        ("claude-sonnet-4-6", 120),  # ~1,500 tokens: over Sonnet 4.x's 1,024
        ("claude-sonnet-5-5", 400),  # ~5,000 tokens: over the 4,096 assumed for 5.5 models
        ("claude-haiku-5-5", 400),
    ],
)
async def test_a_long_shared_prefix_is_cached_by_one_warming_call(
    claude_sandbox: ClaudeSandbox, prices: PriceTable, model: str, repeats: int
) -> None:
    # Only a question far over the default length limit makes the shared prefix this long.
    question = QUESTION + ". Context: " + "the platform has posts, follows and likes. " * repeats

    recorder = await run_pipeline(claude_sandbox, prices, question=question, examples_model=model)

    calls = [
        e.call
        for e in recorder.of(CallFinished)
        if isinstance(e, CallFinished) and e.call.role == "example"
    ]
    writes = [c for c in calls if c.usage.cache_write_5m_tokens > 0]
    reads = [c for c in calls if c.usage.cache_read_tokens > 0]
    assert len(writes) == 1
    assert len(reads) == len(calls) - 1
    assert isinstance(recorder.events[-1], RunFinished)


async def test_a_prefix_over_the_likely_5_5_minimum_is_warmed_by_one_call(
    prices: PriceTable,
) -> None:
    # ~1,500 tokens: over the 512 secondary sources give for 5.5 models. Fired at once, the
    # examples would each pay the cache write; so one writes and the rest wait for it.
    question = QUESTION + ". Context: " + "the platform has posts, follows and likes. " * 120
    minimums = {"claude-haiku-5-5": 512}
    async with ClaudeSandbox(latency=LatencyModel(time_scale=0.05), cache_minimums=minimums) as sb:
        recorder = await run_pipeline(sb, prices, question=question)
        examples = [r for r in sb.requests if r.role == "example"]

    first, rest = examples[0], examples[1:]
    assert first.first_token is not None
    assert rest and all(r.started >= first.first_token - 0.01 for r in rest)
    calls = [e.call for e in recorder.of(CallFinished) if isinstance(e, CallFinished)]
    examples_calls = [c for c in calls if c.role == "example"]
    assert sum(c.usage.cache_write_5m_tokens > 0 for c in examples_calls) == 1
    assert sum(c.usage.cache_read_tokens > 0 for c in examples_calls) == len(rest)


async def test_a_short_prefix_is_marked_and_its_examples_start_together(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    # A typical question's prefix (~400 tokens) is under every known minimum: marked all the
    # same (the API then simply does not cache it), and nobody waits for a warming call.
    claude_sandbox.latency = LatencyModel(time_scale=0.05)
    await run_pipeline(claude_sandbox, prices)

    examples = [r for r in claude_sandbox.requests if r.role == "example"]
    assert len(examples) >= 2
    assert all('"cache_control"' in str(r.body["messages"]).replace("'", '"') for r in examples)
    first_token = min(r.first_token for r in examples if r.first_token is not None)
    assert all(r.started < first_token for r in examples)


async def test_cancelling_a_run_records_the_spent_tokens_and_ends_it_interrupted(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="example", delay_s=30)
    settings = settings_for(claude_sandbox)
    claude = Claude.from_settings(settings, price=prices.cost)
    recorder = Recorder()
    task = asyncio.create_task(
        Pipeline(claude, settings=settings, prices=prices).run(QUESTION, emit=recorder)
    )
    while sum(r.role == "example" for r in claude_sandbox.requests) < 2:  # noqa: ASYNC110 - the sandbox has no request notification
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # the example streams have started: input tokens are counted

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await claude.aclose()

    last = recorder.events[-1]
    assert isinstance(last, RunFailed) and last.interrupted
    cut = [
        e.call
        for e in recorder.of(CallFinished)
        if isinstance(e, CallFinished) and e.call.outcome == "cancelled"
    ]
    assert len(cut) >= 2
    assert all(c.usage.input_tokens > 0 for c in cut)


async def test_the_review_call_starts_when_the_last_example_call_returns_not_after_rendering(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    class SlowRenderer(Recorder):
        async def __call__(self, event: Event) -> None:
            await super().__call__(event)
            if isinstance(event, ExampleReady):
                await asyncio.sleep(0.5)  # like a paced Slack post

    settings = settings_for(claude_sandbox)
    claude = Claude.from_settings(settings, price=prices.cost)
    recorder = SlowRenderer()
    try:
        await Pipeline(claude, settings=settings, prices=prices).run(QUESTION, emit=recorder)
    finally:
        await claude.aclose()

    examples = [r for r in claude_sandbox.requests if r.role == "example"]
    review = next(r for r in claude_sandbox.requests if r.role == "review")
    last_example_done = max(r.finished for r in examples)
    assert review.started - last_example_done < 0.4
    kinds = [k for k in recorder.kinds() if k != "CallFinished"]
    assert kinds[-2:] == ["ReviewReady", "RunFinished"]


def test_the_worst_case_bounds_every_call_at_its_token_limit(prices: PriceTable) -> None:
    pipeline = Pipeline(offline_claude(prices), settings=Settings(), prices=prices)
    worst = pipeline.worst_case_usd(QUESTION)
    assert worst is not None
    # At least: a plan and its repair (with more room), six examples and a review, each at
    # its max_tokens of output alone.
    plan = max_tokens_for("plan", "low")
    floor = (
        (prices.cost("claude-opus-5-5", TokenUsage(output_tokens=plan)) or 0)
        + (prices.cost("claude-opus-5-5", TokenUsage(output_tokens=repair_max_tokens(plan))) or 0)
        + 6
        * (
            prices.cost(
                "claude-haiku-5-5", TokenUsage(output_tokens=max_tokens_for("example", "low"))
            )
            or 0
        )
        + (
            prices.cost(
                "claude-sonnet-5-5", TokenUsage(output_tokens=max_tokens_for("review", "low"))
            )
            or 0
        )
    )
    assert worst > floor
    longer = pipeline.worst_case_usd(QUESTION * 20)
    assert longer is not None and longer > worst
    unpriced_settings = Settings(review_model="claude-x")
    unpriced = Pipeline(offline_claude(prices), settings=unpriced_settings, prices=prices)
    assert unpriced.worst_case_usd(QUESTION) is None


@pytest.mark.parametrize("role", ["strategy_effort", "examples_effort", "review_effort"])
def test_the_worst_case_grows_with_each_roles_effort(prices: PriceTable, role: str) -> None:
    def worst(effort: str) -> Decimal:
        settings = replace(Settings(), **{role: effort})  # type: ignore[arg-type]
        pipeline = Pipeline(offline_claude(prices), settings=settings, prices=prices)
        figure = pipeline.worst_case_usd(QUESTION)
        assert figure is not None
        return figure

    assert worst("low") < worst("medium") < worst("high") < worst("xhigh") < worst("max")


@pytest.mark.parametrize("effort", ["low", "medium", "high", "xhigh", "max"])
def test_every_role_has_room_for_the_thinking_of_its_effort(effort: str) -> None:
    # Thinking counts toward max_tokens: the room grows with effort, never past the maximum.
    for role in ("plan", "example", "review"):
        limit = max_tokens_for(role, effort)
        assert limit <= MAX_OUTPUT_TOKENS
        assert limit >= THINKING_ROOM[effort] or limit == MAX_OUTPUT_TOKENS
    assert max_tokens_for("plan", "high") > 4096


@pytest.mark.parametrize("effort", ["high", "xhigh", "max"])
async def test_a_high_effort_strategy_has_room_to_think_and_answer(
    claude_sandbox: ClaudeSandbox, prices: PriceTable, effort: str
) -> None:
    recorder = await run_pipeline(claude_sandbox, prices, strategy_effort=effort)

    assert isinstance(recorder.events[-1], RunFinished)
    plans = [c for c in calls_of(recorder) if c.role == "plan"]
    assert [c.outcome for c in plans] == ["ok"]
    assert plans[0].usage.thinking_tokens > 4096 or effort == "high"
    sent = next(r for r in claude_sandbox.requests if r.role == "plan")
    assert sent.body["output_config"]["effort"] == effort
    assert sent.body["max_tokens"] == max_tokens_for("plan", effort)


async def test_examples_and_review_send_their_own_effort_with_room_for_it(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder = await run_pipeline(
        claude_sandbox, prices, examples_effort="high", review_effort="medium"
    )

    assert isinstance(recorder.events[-1], RunFinished)
    example = next(r for r in claude_sandbox.requests if r.role == "example")
    review = next(r for r in claude_sandbox.requests if r.role == "review")
    assert example.body["output_config"]["effort"] == "high"
    assert example.body["max_tokens"] == max_tokens_for("example", "high")
    assert review.body["output_config"]["effort"] == "medium"
    assert review.body["max_tokens"] == max_tokens_for("review", "medium")


async def test_a_plan_cut_off_at_its_limit_is_repaired_with_twice_the_room(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="plan", fault="max_tokens", times=1)

    recorder = await run_pipeline(claude_sandbox, prices)

    first, repair = [r for r in claude_sandbox.requests if r.role == "plan"]
    assert repair.body["max_tokens"] == 2 * first.body["max_tokens"]
    assert "cut off at the token limit" in str(repair.body["messages"])
    assert isinstance(recorder.events[-1], RunFinished)


async def test_an_invalid_plan_not_cut_off_is_repaired_with_the_same_room(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="plan", fault="invalid_output", times=1)

    await run_pipeline(claude_sandbox, prices)

    first, repair = [r for r in claude_sandbox.requests if r.role == "plan"]
    assert repair.body["max_tokens"] == first.body["max_tokens"]


async def test_a_typical_run_costs_far_less_than_its_reserved_worst_case(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder = await run_pipeline(claude_sandbox, prices)
    finished = recorder.events[-1]
    assert isinstance(finished, RunFinished) and finished.cost.total_usd is not None
    pipeline = Pipeline(offline_claude(prices), settings=Settings(), prices=prices)
    worst = pipeline.worst_case_usd(QUESTION)
    assert worst is not None and finished.cost.total_usd < worst / 5


async def test_a_call_being_recorded_when_the_run_is_cancelled_is_still_recorded(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="example", delay_s=30)
    settings = settings_for(claude_sandbox)
    claude = Claude.from_settings(settings, price=prices.cost)
    written: list[CallFinished] = []
    writing = asyncio.Event()

    async def slow_ledger(event: Event) -> None:
        if isinstance(event, CallFinished) and event.call.role == "plan":
            writing.set()
            await asyncio.sleep(0.3)  # the write is under way when the cancel arrives
        if isinstance(event, CallFinished):
            written.append(event)

    task = asyncio.create_task(
        Pipeline(claude, settings=settings, prices=prices).run(QUESTION, emit=slow_ledger)
    )
    await writing.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.4)
    await claude.aclose()

    assert [e.call.role for e in written] == ["plan"]


async def test_a_run_cancelled_while_calls_wait_for_a_slot_leaves_no_unawaited_coroutine(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    import gc
    import warnings

    claude_sandbox.add_rule(role="example", delay_s=30)
    settings = settings_for(claude_sandbox, max_concurrent_calls=1)
    claude = Claude.from_settings(settings, price=prices.cost)
    task = asyncio.create_task(
        Pipeline(claude, settings=settings, prices=prices).run(QUESTION, emit=Recorder())
    )
    while not any(r.role == "example" for r in claude_sandbox.requests):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.collect()
    await claude.aclose()
    assert [w for w in caught if "never awaited" in str(w.message)] == []


# -- calls cut off mid-stream: each bills what it streamed, estimated ----------------------

# Slow enough that a cut lands mid-answer, fast enough for a test: an example streams for
# about 2 s (≈120 hidden thinking tokens, then ≈600 of text at 300 tokens a second).
PACED = LatencyModel(
    {
        "haiku": ModelLatency(0.05, 300.0),
        "opus": ModelLatency(0.05, 4000.0),
        "sonnet": ModelLatency(0.05, 4000.0),
    }
)


@pytest.fixture
async def paced_sandbox() -> AsyncIterator[ClaudeSandbox]:
    async with ClaudeSandbox(latency=PACED) as sandbox:
        yield sandbox


def calls_of(recorder: Recorder) -> list[CallRecord]:
    return [e.call for e in recorder.of(CallFinished) if isinstance(e, CallFinished)]


def assert_billed_within_a_quarter(call: CallRecord, sandbox: ClaudeSandbox) -> None:
    served = next(r for r in sandbox.requests if r.request_id == call.request_id)
    assert call.usage.estimated
    assert served.streamed_tokens > 50, "the cut should land mid-answer"
    assert abs(call.usage.output_tokens - served.streamed_tokens) <= 0.25 * served.streamed_tokens
    assert served.usage is not None and call.usage.input_tokens == served.usage["input_tokens"]


async def strategy_of(sandbox: ClaudeSandbox, prices: PriceTable) -> Strategy:
    sandbox.add_rule(role="example", delay_s=0.01)  # fast example calls for this first run
    first = await run_pipeline(sandbox, prices)
    sandbox.clear_rules()
    strategy = first.of(StrategyReady)[0]
    assert isinstance(strategy, StrategyReady)
    return strategy.strategy


async def test_a_connection_cut_mid_stream_fails_that_example_alone_with_its_usage_estimated(
    paced_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    strategy = await strategy_of(paced_sandbox, prices)
    doomed = strategy.components[0].name
    paced_sandbox.add_rule(role="example", contains=f'name="{doomed}"', fault="disconnect")
    before = len(paced_sandbox.requests)

    recorder = await run_pipeline(paced_sandbox, prices)

    failed = [e for e in recorder.of(ExampleFailed) if isinstance(e, ExampleFailed)]
    assert [e.component.name for e in failed] == [doomed]
    assert "connection" in failed[0].reason and "broke" in failed[0].reason
    assert len(recorder.of(ExampleReady)) == len(strategy.components) - 1
    review = next(r for r in paced_sandbox.requests[before:] if r.role == "review")
    assert f'name="{doomed}" status="failed"' in str(review.body["messages"])
    finished = recorder.events[-1]
    assert isinstance(finished, RunFinished)
    cut = [c for c in calls_of(recorder) if c.outcome == "error"]
    assert len(cut) == 1 and cut[0].component_index == 0
    assert_billed_within_a_quarter(cut[0], paced_sandbox)
    assert cut[0].cost_usd is not None and cut[0].cost_usd > 0
    # The run's bill includes the estimate, and says so.
    assert any(m.usage.estimated for m in finished.cost.by_model)
    served = paced_sandbox.messages()[before:]
    assert len(calls_of(recorder)) == len(served)  # every call the API served is recorded


async def test_a_call_timing_out_mid_stream_is_billed_for_what_it_streamed(
    paced_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder = await run_pipeline(paced_sandbox, prices, call_timeout_s=1.0)

    examples = [c for c in calls_of(recorder) if c.role == "example"]
    assert examples and all(c.outcome == "timeout" for c in examples)
    for call in examples:
        assert_billed_within_a_quarter(call, paced_sandbox)
    assert isinstance(recorder.events[-1], RunFinished)


async def test_a_run_stopped_mid_stream_bills_within_a_quarter_of_the_tokens_streamed(
    paced_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    settings = settings_for(paced_sandbox)
    claude = Claude.from_settings(settings, price=prices.cost)
    recorder, stop = Recorder(), RunStop()
    task = asyncio.create_task(
        Pipeline(claude, settings=settings, prices=prices).run(QUESTION, emit=recorder, stop=stop)
    )
    while not recorder.of(StrategyReady):  # noqa: ASYNC110 - the emit list is the signal
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)  # every example is streaming its text

    stop.stop("stopped by the test.")
    stopped_at = time.monotonic()
    await task  # a stop ends the run normally: no cancellation escapes
    await claude.aclose()

    last = recorder.events[-1]
    assert isinstance(last, RunFailed) and last.interrupted
    assert last.reason == "stopped by the test."
    cut = [c for c in calls_of(recorder) if c.outcome == "cancelled"]
    examples = [r for r in paced_sandbox.requests if r.role == "example"]
    assert len(cut) == len(examples) >= 2
    for call in cut:
        assert_billed_within_a_quarter(call, paced_sandbox)
    streamed = sum(r.streamed_tokens for r in examples)
    billed = sum(c.usage.output_tokens for c in cut)
    assert abs(billed - streamed) <= 0.25 * streamed
    # The streams were closed at once, so the API generated nothing more.
    assert all(r.finished is not None and r.finished - stopped_at < 0.3 for r in examples)
    assert last.cost.total_usd is not None and last.cost.total_usd > 0
    assert any(m.usage.estimated for m in last.cost.by_model)


async def test_a_stop_before_the_run_starts_calls_no_model(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    settings = settings_for(claude_sandbox)
    stop = RunStop()
    stop.stop("stopped early.")
    recorder = Recorder()
    claude = Claude.from_settings(settings, price=prices.cost)
    await Pipeline(claude, settings=settings, prices=prices).run(QUESTION, emit=recorder, stop=stop)
    await claude.aclose()

    assert claude_sandbox.messages() == []
    last = recorder.events[-1]
    assert isinstance(last, RunFailed) and last.reason == "stopped early."


async def test_a_stop_after_the_run_finished_changes_nothing(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    settings = settings_for(claude_sandbox)
    stop = RunStop()
    recorder = Recorder()
    claude = Claude.from_settings(settings, price=prices.cost)
    await Pipeline(claude, settings=settings, prices=prices).run(QUESTION, emit=recorder, stop=stop)
    stop.stop("too late.")
    await claude.aclose()

    assert isinstance(recorder.events[-1], RunFinished)
    assert not any(c.usage.estimated for c in calls_of(recorder))


class CountingBudget:
    """A `CallBudget` with room for `allow` calls: it keeps each worst case it was asked to
    hold and the keys it handed out, and refuses past `allow` (the ledger's own arithmetic is
    tested in tests/ledger/test_reservations.py)."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.asked: list[Decimal | None] = []
        self.keys: list[str] = []
        self.released: list[str] = []

    async def hold(self, worst_case_usd: Decimal | None) -> str | None:
        self.asked.append(worst_case_usd)
        if len(self.keys) >= self.allow:
            raise CallRefused("the budget has no room for this call")
        self.keys.append(f"hold-{len(self.keys)}")
        return self.keys[-1]

    async def release(self, key: str) -> None:
        self.released.append(key)


async def run_budgeted(
    sandbox: ClaudeSandbox, prices: PriceTable, *, allow_calls: int, max_concurrent_calls: int = 16
) -> tuple[Recorder, CountingBudget]:
    settings = settings_for(sandbox, max_concurrent_calls=max_concurrent_calls)
    claude = Claude.from_settings(settings, price=prices.cost)
    recorder = Recorder()
    budget = CountingBudget(allow_calls)
    try:
        pipeline = Pipeline(claude, settings=settings, prices=prices)
        await pipeline.run(QUESTION, emit=recorder, budget=budget)
    finally:
        await claude.aclose()
    return recorder, budget


async def test_a_budget_refusing_the_plan_ends_the_run_before_any_call(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder, _ = await run_budgeted(claude_sandbox, prices, allow_calls=0)
    assert claude_sandbox.requests == []
    assert [k for k in recorder.kinds()] == ["RunStarted", "RunFailed"]
    failed = recorder.of(RunFailed)[0]
    assert isinstance(failed, RunFailed) and failed.reason == "the budget has no room for this call"


async def test_a_refused_example_is_a_failed_step_and_a_refused_review_a_failed_review(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    # The plan and one example get their holds; the other examples and the review do not.
    recorder, budget = await run_budgeted(
        claude_sandbox, prices, allow_calls=2, max_concurrent_calls=1
    )
    calls = [e.call for e in recorder.events if isinstance(e, CallFinished)]
    assert len(claude_sandbox.requests) == len(calls) == 2
    assert [c.role for c in calls] == ["plan", "example"]
    # Each record carries its hold's key: writing it settles the hold.
    assert [c.key for c in calls] == budget.keys == ["hold-0", "hold-1"]
    failed = recorder.of(ExampleFailed)
    assert failed and all(
        isinstance(f, ExampleFailed) and f.reason == "the budget has no room for this call"
        for f in failed
    )
    review = recorder.of(ReviewFailed)[0]
    assert isinstance(review, ReviewFailed)
    assert review.reason == "the budget has no room for this call"
    assert recorder.kinds()[-1] == "RunFinished"
    assert budget.released == []


async def test_every_hold_covers_what_its_call_cost_and_its_whole_token_limit(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    recorder, budget = await run_budgeted(claude_sandbox, prices, allow_calls=100)
    calls = [e.call for e in recorder.events if isinstance(e, CallFinished)]
    sent = {r.request_id: r.body for r in claude_sandbox.messages()}
    assert len(budget.asked) == len(calls) == len(sent)
    for call in calls:
        worst = budget.asked[budget.keys.index(call.key or "")]
        limit = sent[call.request_id or ""]["max_tokens"]
        out = prices.cost(call.model, TokenUsage(output_tokens=limit))
        assert worst is not None and out is not None and call.cost_usd is not None
        assert worst >= call.cost_usd and worst > out


async def test_calls_use_each_models_own_output_maximum_as_the_api_reports_it(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    # At `max` effort an example wants 5,120 visible + 28,672 thinking tokens: more than the
    # 32,000 every model was once clipped to; the 5.5 models allow 128,000 (GET /v1/models).
    settings = settings_for(claude_sandbox, examples_effort="max", strategy_effort="max")
    claude = Claude.from_settings(settings, price=prices.cost)
    claude_sandbox.add_rule(role="plan", fault="max_tokens", times=1)
    try:
        await claude.check_models()
        recorder = Recorder()
        await Pipeline(claude, settings=settings, prices=prices).run(QUESTION, emit=recorder)
    finally:
        await claude.aclose()
    sent = [(r.role, r.body["max_tokens"]) for r in claude_sandbox.messages()]
    want = VISIBLE_TOKENS["example"] + THINKING_ROOM["max"]
    assert want > MAX_OUTPUT_TOKENS
    assert ("example", want) in sent
    # The cut-off plan's repair gets twice its room, which the 32,000 clip used to eat.
    plan = VISIBLE_TOKENS["plan"] + THINKING_ROOM["max"]
    assert [m for role, m in sent if role == "plan"] == [plan, 2 * plan]
    assert isinstance(recorder.events[-1], RunFinished)


async def test_an_answer_cut_by_a_full_context_window_is_a_failure_not_an_answer(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="example", fault="context_window", times=1)
    recorder = await run_pipeline(claude_sandbox, prices)
    failed = recorder.of(ExampleFailed)
    assert len(failed) == 1 and isinstance(failed[0], ExampleFailed)
    assert "context window" in failed[0].reason
    cut = [c for c in calls_of(recorder) if c.outcome == "error"]
    assert len(cut) == 1 and cut[0].role == "example" and "context window" in (cut[0].error or "")


async def test_a_call_cut_off_after_its_usage_arrived_keeps_its_thinking_tokens(
    claude_sandbox: ClaudeSandbox, prices: PriceTable
) -> None:
    claude_sandbox.add_rule(role="example", fault="disconnect_after_delta", times=1)
    recorder = await run_pipeline(claude_sandbox, prices)
    cut = next(c for c in calls_of(recorder) if c.outcome == "error")
    served = next(r for r in claude_sandbox.messages() if r.request_id == cut.request_id)
    assert served.usage is not None
    billed = served.usage["output_tokens_details"]["thinking_tokens"]
    assert billed > 0 and not cut.usage.estimated
    assert cut.usage.thinking_tokens == billed
    assert cut.usage.output_tokens == served.usage["output_tokens"]
