"""Commands a person got slightly wrong are told what to type, and nothing they typed is lost.

Over the wire: the reply is the ephemeral Slack shows; no model is called and nothing is
posted in the channel.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.slack.commands import Ask, Mistyped, parse_command
from tests.harness import running_stack


def test_costs_with_a_period_and_more_words_is_a_mistyped_report_request() -> None:
    assert parse_command("costs month extra", max_chars=100) == Mistyped(
        "month", "costs month extra"
    )
    assert parse_command("costs 7d for alice", max_chars=100) == Mistyped(
        "7d", "costs 7d for alice"
    )
    assert parse_command("costs of running Kafka?", max_chars=100) == Ask("costs of running Kafka?")


async def test_a_mistyped_costs_command_says_what_to_type_and_runs_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.command("costs month extra")
        await stack.settle()
        (reply,) = stack.slack.ephemerals("U0ALICE")
    shown = reply.text + json.dumps(reply.blocks)
    assert "`/orchestrate costs month`" in shown
    assert "costs month extra" in shown
    assert stack.claude.requests == []
    assert stack.slack.messages("C0GENERAL") == []
