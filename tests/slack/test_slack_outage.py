"""Fault injection: Slack drops every connection for 6 s around the review.

The first call in the outage is made by Slack before its connection drops (a post the bot
never hears about); the rest are dropped before Slack acts. Afterwards every call the
Claude stand-in served is in the ledger, and the thread has its review once, its final
status, and no duplicate.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bot.ledger import open_ledger
from tests.harness import running_stack

QUESTION = "Design a REST API for a social network"
OUTAGE_S = 6.0


async def test_slack_dropping_connections_for_6s_around_the_review_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.claude.add_rule(role="review", delay_s=1.0)
        await stack.command(QUESTION)
        async with asyncio.timeout(30):
            while not any(r.role == "review" for r in stack.claude.requests):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        stack.slack.drop_connections(OUTAGE_S, landing=1)
        async with asyncio.timeout(90):
            await stack.services.runs.wait_idle()

        top, replies = stack.thread()
        dropped = [c for c in stack.slack.calls if c.error == "connection_dropped"]
        async with open_ledger(stack.settings.database_url) as ledger:
            report = await ledger.reports.summary(
                "T0SANDBOX", since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime.now(UTC)
            )
    shown = [r.text + json.dumps(r.blocks) for r in replies]
    assert len(dropped) >= 3  # the outage really hit the run's posts
    assert report.calls == len(stack.claude.requests)  # every served call is recorded
    assert "Done in" in top.text + json.dumps(top.blocks)
    assert "⏳" not in top.text + json.dumps(top.blocks)
    assert sum("Reviewed by Sonnet" in s for s in shown) == 1
    parts = Counter(json.dumps(r.metadata, sort_keys=True) for r in replies)
    assert all(n == 1 for n in parts.values()), parts  # no message posted twice
    assert len(set(r.text for r in replies)) == len(replies)
    assert not any("could not be reached" in s or "refused" in s for s in shown)


async def test_a_first_message_that_landed_unanswered_is_found_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.command("help")  # Bolt's first request checks the token: done before
        await stack.settle()
        stack.slack.drop_connections(3.0, landing=1)
        await stack.command(QUESTION)
        async with asyncio.timeout(60):
            while stack.services.runs.admitted < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await stack.services.runs.wait_idle()

        tops = stack.slack.messages("C0GENERAL")
        dropped = [c.method for c in stack.slack.calls if c.error == "connection_dropped"]
        _, replies = stack.thread()
    assert dropped[0] == "chat.postMessage"  # the first message landed, its answer was lost
    assert len(tops) == 1  # and it was found, not posted again
    assert "Done in" in tops[0].text + json.dumps(tops[0].blocks)
    assert sum("Reviewed by Sonnet" in r.text + json.dumps(r.blocks) for r in replies) == 1
