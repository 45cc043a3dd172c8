"""How the text after `/orchestrate` is read."""

from __future__ import annotations

import pytest

from bot.slack.commands import Ask, Costs, Help, TooLong, parse_command


@pytest.mark.parametrize("text", ["", "  ", "help", "HELP"])
def test_empty_and_help_ask_for_usage(text: str) -> None:
    assert parse_command(text, max_chars=100) == Help()


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("costs", "month"),
        ("costs today", "today"),
        ("Costs 7d", "7d"),
        ("costs 2026-11-01", "2026-11-01"),
        ("costs week", "week"),
    ],
)
def test_costs_with_one_word_or_none_is_the_costs_command(text: str, period: str) -> None:
    assert parse_command(text, max_chars=100) == Costs(period)


def test_a_question_that_starts_with_costs_is_a_question() -> None:
    text = "costs of running Kafka versus SQS for 1M events a day?"
    assert parse_command(text, max_chars=100) == Ask(text)


def test_help_me_is_a_question_not_help() -> None:
    assert parse_command("help me design a cache", max_chars=100) == Ask("help me design a cache")


def test_a_question_over_the_limit_says_the_limit() -> None:
    parsed = parse_command("x" * 101, max_chars=100)
    assert parsed == TooLong(length=101, max_chars=100, question="x" * 101)
    assert parse_command("x" * 100, max_chars=100) == Ask("x" * 100)


def test_command_text_is_decoded_from_slacks_entities_before_anything_reads_it() -> None:
    wire = "How do R&amp;D teams use &lt;feature flags&gt; &amp;amp; canaries?"
    assert parse_command(wire, max_chars=100) == Ask(
        "How do R&D teams use <feature flags> &amp; canaries?"
    )


def test_the_length_limit_counts_what_was_typed_not_slacks_entities() -> None:
    assert parse_command("&amp;" * 100, max_chars=100) == Ask("&" * 100)
    assert parse_command("&lt;" * 101, max_chars=100) == TooLong(101, 100, "<" * 101)
