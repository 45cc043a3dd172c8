"""The run's buttons and the feedback view: valid Block Kit, values that round-trip, words."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from slack_sdk.models.blocks import Block

import blocks
from blocks.controls import feedback_actions, retry_actions, stop_actions
from blocks.feedback_view import feedback_blocks
from bot.ledger import FeedbackReport, ModelSetFeedback
from bot.sandbox.slack.blocks import block_errors
from tests.blocks.blocks_sample_data import ASKER, HAIKU, OPUS, SONNET, cost

RUN = "3f2b1c9e-0000-4000-8000-000000000001"


def valid(block: dict[str, Any]) -> None:
    """Slack's rules twice: slack_sdk's own model validation, and the sandbox's checks."""
    parsed = Block.parse(block)
    assert parsed is not None and parsed.to_dict() == block
    assert block_errors([block]) == []


def test_the_buttons_are_valid_block_kit_and_carry_the_run() -> None:
    for block in (stop_actions(RUN), feedback_actions(RUN), retry_actions(RUN, 3)):
        valid(block)
    assert blocks.parse_vote(f"up:{RUN}") == ("up", RUN)
    assert blocks.parse_vote(f"down:{RUN}") == ("down", RUN)
    assert blocks.parse_vote("sideways:x") is None and blocks.parse_vote("up:") is None
    assert blocks.parse_retry(retry_actions(RUN, 3)["elements"][0]["value"]) == (RUN, 3)
    assert blocks.parse_retry("nonsense") is None


def test_a_working_run_has_a_stop_button_and_a_finished_one_has_none() -> None:
    working = blocks.status_message(asker_id=ASKER, question="q", status="⏳", stop_run_id=RUN)
    done = blocks.status_message(asker_id=ASKER, question="q", status="✅")
    assert blocks.STOP_ACTION in str(working.blocks) and blocks.STOP_ACTION not in str(done.blocks)
    assert block_errors(list(working.blocks)) == []


def test_the_stop_notice_names_who_stopped_and_shows_the_bill() -> None:
    notice = blocks.stopped_message(stopped_by="U0BOB", cost=cost(), elapsed_s=4.25)
    assert notice.text.startswith("⏹ Stopped by <@U0BOB> after 4.2")
    assert "Total" in str(notice.blocks)
    refusal = blocks.only_asker_message(asker_id="U0ALICE", action="stop")
    assert refusal.text == "Only <@U0ALICE> or an admin can stop this run."


def test_feedback_reads_votes_satisfaction_cost_per_up_vote_and_model_sets() -> None:
    report = FeedbackReport(
        up=3,
        down=1,
        voted_runs=3,
        spent_usd=Decimal("0.12"),
        by_model_set=(ModelSetFeedback(tuple(sorted((OPUS, HAIKU, SONNET))), 3, 1),),
    )
    text = str(feedback_blocks(report, period_label="last 30 days"))
    assert "👍 3 · 👎 1 · 75% satisfied (4 votes on 3 runs) · $0.0400 per 👍" in text
    assert "• Haiku + Opus + Sonnet — 👍 3 · 👎 1 · 75% satisfied" in text
    empty = FeedbackReport(0, 0, 0, Decimal(0), ())
    assert "No votes yet" in str(feedback_blocks(empty, period_label="today"))


def test_retry_replies_escape_the_component_name_and_say_why() -> None:
    hostile = "<!channel> <https://evil.example|Click>"
    under_way = blocks.retry_under_way_message(name=hostile)
    assert "<!channel>" not in str(under_way.blocks) and "<https://" not in under_way.text
    assert "is already being retried" in under_way.text
    for reply in (
        blocks.retry_unavailable_message(),
        blocks.retry_not_failed_message(),
        blocks.retry_while_running_message(),
        under_way,
    ):
        assert block_errors(list(reply.blocks)) == []
    assert "no longer available" in blocks.retry_unavailable_message().text


def test_a_retry_value_that_is_not_a_small_ascii_number_is_malformed() -> None:
    for index in ("-1", "²", "٣", "1.0", " 1", "9" * 5000, "1234567", ""):
        assert blocks.parse_retry(f"{RUN}:{index}") is None, index
    assert blocks.parse_retry(f"{RUN}:0") == (RUN, 0)
