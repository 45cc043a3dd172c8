"""Follow-up replies and the amended footer: within Slack's limits, harmless, exact figures."""

from __future__ import annotations

from decimal import Decimal

import blocks
from tests.blocks.slack_checks import (
    all_text,
    assert_harmless,
    assert_valid_block,
    assert_valid_messages,
)

HOSTILE = "<!channel> see <https://evil.example|docs> @here <@U0BOB>"


def test_the_footer_line_reads_run_plus_follow_ups_equals_total() -> None:
    block = blocks.followups_total_block(
        run_usd=Decimal("0.0241"), count=2, followups_usd=Decimal("0.0032")
    )
    assert_valid_block(block)
    assert block["block_id"] == blocks.FOLLOWUPS_BLOCK_ID
    assert block["elements"][0]["text"] == "*Total $0.0241 + 2 follow-ups $0.0032 = $0.0273*"
    one = blocks.followups_total_block(
        run_usd=Decimal("0.01"), count=1, followups_usd=Decimal("0.002"), unpriced_calls=1
    )
    assert one["elements"][0]["text"] == (
        "*Total $0.0100 + 1 follow-up $0.0020 = $0.0120* · 1 unpriced call not included"
    )


def test_an_answer_names_asker_model_and_cost_and_escapes_what_it_quotes() -> None:
    messages = blocks.followup_answer_messages(
        asker_id="U0ALICE",
        request=HOSTILE,
        markdown=f"Answer quoting {HOSTILE}",
        model="claude-sonnet-5-5",
        cost_usd=Decimal("0.0012"),
        omitted=3,
    )
    assert_valid_messages(messages)
    assert_harmless(messages, allowed=("<@U0ALICE>",))
    text = "\n".join(all_text(messages))
    assert "<@U0ALICE> asked" in text and "Answered by Sonnet" in text and "$0.0012" in text
    assert "3 older messages in between were left out" in text


def test_a_long_redo_is_split_and_keeps_its_heading_and_attribution() -> None:
    messages = blocks.followup_example_messages(
        asker_id="U0ALICE",
        request="redo 2 in Go",
        number=2,
        name="Pagination",
        markdown="word " * 6000,
        model="claude-haiku-5-5",
        cost_usd=None,
    )
    assert len(messages) > 1
    assert_valid_messages(messages)
    first, last = "\n".join(all_text(messages[:1])), "\n".join(all_text(messages[-1:]))
    assert "Component 2, redone · Pagination" in first
    assert "Illustrated by Haiku" in last and "unpriced" in last
    added = blocks.followup_example_messages(
        asker_id="U0ALICE", request="add one on auth", number=None, name="Added component",
        markdown="# Auth", model="claude-haiku-5-5", cost_usd=Decimal("0.0003"),
    )  # fmt: skip
    assert "Added component" in "\n".join(all_text(added))


def test_an_unreadable_thread_says_what_to_do() -> None:
    message = blocks.thread_unreadable_message(error="channel_not_found")
    assert_valid_messages([message])
    assert "channel_not_found" in message.text and "/invite @orchestrate" in message.text


def test_app_home_says_how_to_follow_up_and_counts_follow_ups() -> None:
    from dataclasses import replace

    from tests.blocks.test_blocks_views import REPORT

    view = blocks.home_view(report=replace(REPORT, followups=2), daily=(), is_admin=False)
    text = str(view["blocks"])
    assert "in a run's thread to follow up" in text and "64 + 2 follow-ups" in text


def test_help_lists_mentions_follow_ups_and_the_shortcut() -> None:
    message = blocks.help_message(max_chars=2000)
    assert_valid_messages([message])
    text = "\n".join(all_text([message]))
    assert "@orchestrate &lt;follow-up&gt;" in text and "Orchestrate this thread" in text
