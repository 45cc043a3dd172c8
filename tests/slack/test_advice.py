"""Advice the app gives is advice people can follow in the app manifest.yml installs.

The Messages tab is on and read-only: it is where the budget alerts (DMs to admins) arrive,
and no one can write there, nor does the app subscribe to direct messages. So no reply may
tell people to message the bot directly.
"""

from __future__ import annotations

import json
from pathlib import Path

from blocks import channel_unavailable_message
from bot.sandbox.slack.manifest import load_manifest
from bot.sandbox.slack.workspace import Channel
from tests.harness import running_stack


def test_the_messages_tab_shows_budget_alerts_and_takes_no_messages() -> None:
    manifest = load_manifest()
    assert manifest.messages_tab_enabled  # budget alerts are DMs: they must be visible
    assert manifest.messages_tab_read_only
    assert "message.im" not in manifest.bot_events


def test_no_advice_sends_people_to_a_dm_the_app_does_not_read() -> None:
    manifest = load_manifest()
    reads_dms = not manifest.messages_tab_read_only and "message.im" in manifest.bot_events
    for error in ("not_in_channel", "channel_not_found"):
        advice = channel_unavailable_message(error=error).text.lower()
        assert reads_dms or not any(p in advice for p in ("message me", "dm me", "in a dm,"))
        assert "/invite @orchestrate" in advice


async def test_a_command_in_a_dm_between_people_gets_advice_it_can_follow(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        ws = stack.slack.workspace
        ws.channels["D0ALICEBOB"] = Channel(
            "D0ALICEBOB", "", is_im=True, members={"U0ALICE", "U0BOB"}, im_user="U0BOB"
        )
        ws.history["D0ALICEBOB"] = []
        await stack.command("How should we shard our database?", channel_id="D0ALICEBOB")
        await stack.settle()
        (reply,) = stack.slack.ephemerals("U0ALICE")
    shown = reply.text + json.dumps(reply.blocks)
    assert "run it in a channel I'm in" in shown.replace("\\u2019", "'")
    assert "message me" not in shown
    assert stack.claude.requests == []
