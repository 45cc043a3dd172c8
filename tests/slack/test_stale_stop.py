"""Scenario test: a Stop button left on an ended run's first message (its final edit never
reached Slack) is taken off by a click, once the run's own final edit can no longer be on
its way."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import actions
from tests.harness import running_stack
from tests.slack.test_run_controls import QUESTION, ephemeral_for


async def test_stop_on_a_long_ended_run_whose_final_edit_was_lost_takes_the_button_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.slack.fail_next("chat.update", error="cant_update_message", times=20)
        await stack.command(QUESTION)
        await stack.settle()
        top, _ = stack.thread()
        assert "orchestrate_stop" in str(top.blocks)  # the run ended; its button stayed
        text, shown = top.text, [b for b in top.blocks if b["type"] != "actions"]
        # Slack takes edits again: the refusals left over are used up on another message.
        client = AsyncWebClient(token=stack.slack.bot_token, base_url=stack.slack.api_url)
        spare = (await client.chat_postMessage(channel="C0GENERAL", text="spare"))["ts"]
        for _ in range(20):
            try:
                await client.chat_update(channel="C0GENERAL", ts=spare, text="x")
                break
            except SlackApiError:
                continue
        edits = len(stack.slack.calls_to("chat.update"))
        # Just ended: its own final edit could still be on its way, so the button stays.
        await stack.slack.click("C0GENERAL", top.ts, "orchestrate_stop")
        await ephemeral_for(stack, "U0ALICE")
        await asyncio.sleep(0.2)
        assert len(stack.slack.calls_to("chat.update")) == edits
        # Long ended: the click takes the button off, and leaves the rest as it was.
        monkeypatch.setattr(actions, "STALE_STOP_S", 0.0)
        await stack.slack.click("C0GENERAL", top.ts, "orchestrate_stop")
        told = await ephemeral_for(stack, "U0ALICE", count=2)

        def now() -> Any:
            return next(m for m in stack.slack.messages("C0GENERAL") if m.ts == top.ts)

        async with asyncio.timeout(5):
            while "orchestrate_stop" in str(now().blocks):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        healed = now()
    assert all("already ended" in t.text for t in told)
    assert healed.text == text and healed.blocks == shown
