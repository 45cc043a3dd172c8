"""Conformance: what a run showed, kept for its web page (`ledger.pages`), the same on
SQLite and PostgreSQL (`ledger_url`)."""

from __future__ import annotations

from decimal import Decimal

from bot.core.events import (
    CallFinished,
    ExampleFailed,
    ExampleReady,
    ReviewReady,
    RunFailed,
    RunFinished,
    RunStarted,
    StrategyDraft,
    StrategyReady,
)
from bot.core.models import Check, Component, Review, Strategy
from bot.core.pricing import CostSummary, ModelCost
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import Reservation, open_ledger
from bot.ledger.pages import event_from_json, event_to_json

COMPONENTS = (Component("Cache", "Show the cache"), Component("Queue", "Show <the> queue"))
STRATEGY = Strategy("Speed it up", "Make it *fast*", COMPONENTS)
COST = CostSummary(
    by_model=(
        ModelCost("claude-opus-5-5", 1, TokenUsage(100, 50), Decimal("0.0123")),
        ModelCost("claude-x", 2, TokenUsage(10, 5, thinking_tokens=2, estimated=True), None),
    ),
    total_usd=None,
    all_strategy_model_usd=None,
    strategy_model="claude-opus-5-5",
)
EVENTS = (
    RunStarted("", ("claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-5-5")),
    StrategyReady(STRATEGY, "claude-opus-5-5"),
    ExampleReady(1, COMPONENTS[1], "```py\nprint('<b>')\n```", "claude-haiku-5-5"),
    ExampleFailed(0, COMPONENTS[0], "timed out", "claude-haiku-5-5"),
    ReviewReady(Review((Check("Queue", "warning", "no retry"),), ("gap",), ("next",)), "s"),
    RunFinished(COST, 12.5),
)


def test_every_event_a_page_draws_comes_back_as_it_was() -> None:
    failed = RunFailed("stopped", COST, 3.0, interrupted=False, stopped_by="U0BOB")
    for event in (*EVENTS, failed):
        body = event_to_json(event)
        assert body is not None
        assert event_from_json(body) == event


def test_drafts_and_calls_are_not_kept() -> None:
    call = CallRecord("plan", "m", TokenUsage(1, 1), None, latency_s=0.1, outcome="ok")
    assert event_to_json(StrategyDraft(STRATEGY, "m")) is None
    assert event_to_json(CallFinished(call)) is None


async def test_a_run_and_its_follow_ups_read_back_in_order(ledger_url: str) -> None:
    async with open_ledger(ledger_url) as ledger:
        run_id = await ledger.runs.start_run(
            team_id="T1", channel_id="C1", user_id="U1", question="How?"
        )
        before = await ledger.pages.version(run_id)
        for event in EVENTS:
            await ledger.pages.record(run_id, event)
        await ledger.pages.record(run_id, StrategyDraft(STRATEGY, "m"))  # not kept
        retry = await ledger.runs.reserve_run(
            team_id="T1", channel_id="C1", user_id="U2", question="How?",
            worst_case_usd=Decimal("0.01"), user_budget=None, workspace_budget=None,
            parent_run_id=run_id,
        )  # fmt: skip
        assert isinstance(retry, Reservation)
        retry_id = retry.run_id
        await ledger.pages.record(retry_id, ExampleReady(0, COMPONENTS[0], "again", "h"))
        page = await ledger.pages.page(retry_id)  # a follow-up opens its parent's page
        assert page is not None
        assert page.main.run.id == run_id and page.main.events == EVENTS
        assert [f.run.id for f in page.followups] == [retry_id]
        assert page.followups[0].events == (ExampleReady(0, COMPONENTS[0], "again", "h"),)
        assert await ledger.pages.version(run_id) != before
        assert await ledger.pages.page("no-such-run") is None


async def test_nothing_is_kept_when_questions_are_not(ledger_url: str) -> None:
    async with open_ledger(ledger_url, store_questions=False) as ledger:
        run_id = await ledger.runs.start_run(
            team_id="T1", channel_id="C1", user_id="U1", question="How?"
        )
        for event in EVENTS:
            await ledger.pages.record(run_id, event)
        page = await ledger.pages.page(run_id)
        assert page is not None and page.main.events == ()
