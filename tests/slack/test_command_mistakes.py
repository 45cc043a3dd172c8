"""Commands a person got slightly wrong are told what to type, and nothing they typed is lost.

Over the wire: the reply is the ephemeral Slack shows; no model is called and nothing is
posted in the channel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blocks import (
    MESSAGE_TEXT_BUDGET,
    mistyped_costs_message,
    question_too_long_messages,
    text_size,
)
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


async def test_a_question_over_the_limit_is_given_back_whole(tmp_path: Path) -> None:
    typed = "How do R&D teams <ship> " + "faster and safer, " * 20 + "end."
    async with running_stack(tmp_path, max_question_chars=100) as stack:
        await stack.command(typed)
        await stack.settle()
        replies = stack.slack.ephemerals("U0ALICE")
        transcript = stack.slack.transcript("C0GENERAL")
    assert len(replies) == 1 and "the limit is 100" in replies[0].text
    assert typed in transcript  # shown as typed, every character
    assert stack.claude.requests == []


def test_a_very_long_question_is_given_back_over_several_replies() -> None:
    typed = "&" * 5_000  # 25,000 bytes once escaped
    replies = question_too_long_messages(length=5_000, max_chars=2_000, question=typed)
    assert len(replies) == 3
    assert all(text_size(list(r.blocks)) <= MESSAGE_TEXT_BUDGET for r in replies)
    shown = "".join(b["text"]["text"] for r in replies for b in r.blocks[1:])
    assert shown.count("&amp;") == 5_000


async def test_a_refused_response_url_falls_back_to_chat_post_ephemeral(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.slack.response_urls.fail_next(error="expired_url", status=404)
        await stack.command("help")
        await stack.settle()
        replies = stack.slack.ephemerals("U0ALICE")
        urls = [entry.url for entry in stack.slack.response_urls.urls.values()]
    assert [r.source for r in replies] == ["chat.postEphemeral"]
    assert "/orchestrate" in replies[0].text
    (warning,) = [r for r in caplog.records if "response URL refused" in r.getMessage()]
    assert "HTTP 404 expired_url" in warning.getMessage()
    assert not any(url in r.getMessage() for r in caplog.records for url in urls)


async def test_a_used_up_response_url_still_gets_a_long_question_back(tmp_path: Path) -> None:
    async with running_stack(tmp_path, max_question_chars=10) as stack:
        stack.slack.response_urls.fail_next(error="used_url", status=404, times=5)
        await stack.command("a question that is too long")
        await stack.settle()
        replies = stack.slack.ephemerals("U0ALICE")
    assert [r.source for r in replies] == ["chat.postEphemeral"]
    assert "a question that is too long" in json.dumps(replies[0].blocks)


def test_a_runaway_mistyped_command_still_fits_one_reply() -> None:
    message = mistyped_costs_message(command="/orchestrate", period="month", typed="x" * 50_000)
    assert text_size(list(message.blocks)) <= MESSAGE_TEXT_BUDGET
