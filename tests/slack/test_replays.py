"""A replayed signed slash command is acknowledged and ignored: one run, one thread, one bill.

Slack signs a request with a timestamp it accepts for five minutes, so the same body and
headers, captured and sent again, pass the signature check. The run's id is derived from the
command's `trigger_id`, and the run engine starts a workflow id once: later deliveries get
their 200 and nothing else.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.sandbox.slack.payloads import post_signed
from bot.slack.shortcuts import CALLBACK_ID
from tests.harness import running_stack
from tests.slack.test_ledger_outages import assert_thread_complete, ledger_request_ids

QUESTION = "Design a REST API for a social network"


async def test_a_replayed_command_is_acknowledged_and_runs_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        body = stack.slack.slash_command_body(text=QUESTION)
        headers = stack.slack.signed_request(body)

        answers = [await post_signed(stack.events_url, body, headers) for _ in range(3)]
        await stack.settle()
        await asyncio.sleep(0.3)  # a second run, were one admitted, would have started
        await stack.services.runs.wait_idle()

        assert [status for status, *_ in answers] == [200, 200, 200]
        assert len(stack.slack.messages("C0GENERAL")) == 1
        assert sum(r.role == "plan" for r in stack.claude.messages()) == 1
        report = await stack.services.reports.summary(
            "T0SANDBOX", since=datetime.now(UTC) - timedelta(hours=1), until=datetime.now(UTC)
        )
        assert report.runs == 1
        assert_thread_complete(stack)
        served = sorted(r.request_id for r in stack.claude.messages())
        assert await ledger_request_ids(stack.services.ledger) == served


async def test_a_replayed_message_shortcut_is_acknowledged_and_runs_once(tmp_path: Path) -> None:
    # An interactive payload is signed like a command, so a captured one replays the same way;
    # Slack never retries it, so any second delivery of its trigger_id is a replay.
    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        top = stack.slack.workspace.post_as("U0BOB", "C0GENERAL", "How should we version it?")
        body = stack.slack.message_shortcut_body(top, callback_id=CALLBACK_ID)
        headers = stack.slack.signed_request(body)

        answers = [await post_signed(stack.events_url, body, headers) for _ in range(3)]
        await stack.settle()
        await asyncio.sleep(0.3)  # a second run, were one admitted, would have started
        await stack.services.runs.wait_idle()

        assert [status for status, *_ in answers] == [200, 200, 200]
        assert sum(r.role == "plan" for r in stack.claude.messages()) == 1
        served = sorted(r.request_id for r in stack.claude.messages())
        assert await ledger_request_ids(stack.services.ledger) == served
