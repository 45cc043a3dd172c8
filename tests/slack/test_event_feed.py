"""A run's event feed (`bot.slack.runs.EventFeed`): what the pipeline queues, its consumer
pulls in order; a strategy draft already overtaken by a newer draft, or by the strategy,
is skipped (there is no wire here: the feed is the in-process queue between the two)."""

from __future__ import annotations

import asyncio

from bot.core.events import Event, RunStarted, StrategyDraft, StrategyReady
from bot.slack.runs import EventFeed
from tests.ledger.test_retries import STRATEGY

MODELS = ("opus", "haiku", "sonnet")


async def pulled(feed: EventFeed) -> list[Event]:
    return [event async for event in feed]


async def test_events_come_out_in_order_and_overtaken_drafts_are_skipped() -> None:
    feed = EventFeed()
    first, second = StrategyDraft(STRATEGY, "opus"), StrategyDraft(STRATEGY, "opus-2")
    ready = StrategyReady(STRATEGY, "opus")
    for event in (RunStarted("q", MODELS), first, second, ready):
        await feed.emit(event)
    feed.close()
    assert await pulled(feed) == [RunStarted("q", MODELS), ready]


async def test_a_draft_the_consumer_keeps_up_with_is_shown() -> None:
    feed = EventFeed()
    consumer = asyncio.create_task(pulled(feed))
    draft = StrategyDraft(STRATEGY, "opus")
    await feed.emit(draft)
    await asyncio.sleep(0)  # the consumer takes it before the next is queued
    await feed.emit(StrategyReady(STRATEGY, "opus"))
    feed.close()
    assert await consumer == [draft, StrategyReady(STRATEGY, "opus")]
