"""Help, errors, the `costs` reply and App Home: valid, harmless, and members see only their own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from blocks_sample_data import HOSTILE, OPUS
from slack_checks import (
    all_text,
    assert_harmless,
    assert_valid_block,
    assert_valid_message,
    section_texts,
)
from slack_sdk.models.views import View

from blocks import (
    budget_refused_message,
    costs_summary_message,
    error_message,
    help_message,
    home_view,
    not_in_channel_message,
    question_too_long_message,
)
from blocks.types import DailyCost, Tally


@dataclass(frozen=True)
class Report:
    """Stands in for the ledger's report type, which `blocks` only knows by its Protocol."""

    total_usd: Decimal | None
    runs: int
    avg_per_run_usd: Decimal | None
    by_model: tuple[Tally, ...]
    by_role: tuple[Tally, ...]
    top_users: tuple[Tally, ...]
    top_channels: tuple[Tally, ...]
    all_strategy_model_usd: Decimal | None
    saving_pct: Decimal | None


REPORT = Report(
    total_usd=Decimal("1.23456"),
    runs=64,
    avg_per_run_usd=Decimal("0.01929"),
    by_model=(
        ("claude-opus-5-5", 64, Decimal("0.8")),
        ("claude-haiku-5-5", 256, Decimal("0.1")),
        ("claude-x", 3, None),
    ),
    by_role=(("plan", 64, Decimal("0.8")), ("example", 256, Decimal("0.1"))),
    top_users=(("U0ALICE", 40, Decimal("0.9")), (HOSTILE, 1, Decimal("0.01"))),
    top_channels=(("C0GENERAL", 50, Decimal("1.0")), ("<!here>", 1, None)),
    all_strategy_model_usd=Decimal("7.5"),
    saving_pct=Decimal("83.54"),
)
DAILY: tuple[DailyCost, ...] = tuple(
    (date(2026, 11, 1) + timedelta(days=n), Decimal(n) / 100, n) for n in range(40)
)


def test_help_explains_usage_examples_and_costs_without_calling_anything() -> None:
    message = help_message(max_chars=2000)
    assert_valid_message(message)
    text = "\n".join(all_text([message]))
    assert "`/orchestrate &lt;question&gt;` — a question of up to 2,000 characters" in text
    assert "`/orchestrate costs`" in text
    assert "/invite @orchestrate" in text
    assert_harmless([message])


def test_error_messages_carry_the_figures_needed_to_act() -> None:
    too_long = question_too_long_message(length=2412, max_chars=2000)
    assert section_texts(too_long) == [
        "⚠ Your question is 2,412 characters; the limit is 2,000. "
        "Shorten it and run the command again."
    ]
    assert "`/invite @orchestrate`" in section_texts(not_in_channel_message())[0]
    budget = budget_refused_message(
        spent_usd=Decimal("50.00004"), budget_usd=Decimal(50), period_label="November"
    )
    assert "$50.0000 spent of $50.0000" in section_texts(budget)[0]
    for message in (too_long, not_in_channel_message(), budget):
        assert_valid_message(message)


def test_error_message_escapes_whatever_it_is_given() -> None:
    message = error_message(f"Could not parse {HOSTILE}")
    assert_valid_message(message)
    assert_harmless([message])


def test_admin_costs_reply_shows_the_workspace() -> None:
    message = costs_summary_message(
        REPORT, period_label="November", is_admin=True, strategy_model=OPUS
    )
    assert_valid_message(message)
    assert message.blocks[0]["text"]["text"] == "orchestrate spend · November"
    fields = [f["text"] for f in message.blocks[1]["fields"]]
    assert fields == [
        "*Total*\n$1.2346",
        "*Runs*\n64",
        "*Average per run*\n$0.0193",
        "*All on Opus*\n$7.5000 · saved 84%",
    ]
    texts = section_texts(message)
    assert texts[0].splitlines()[1:] == [
        "Opus · 64 calls · $0.8000",
        "Haiku · 256 calls · $0.1000",
        "claude-x · 3 calls · unpriced",
    ]
    assert "<@U0ALICE> · 40 runs · $0.9000" in texts[2]
    assert "<#C0GENERAL> · 50 runs · $1.0000" in texts[3]
    assert_harmless([message], allowed=("<@U0ALICE>", "<#C0GENERAL>"))


def test_member_costs_reply_shows_only_their_own_figures() -> None:
    message = costs_summary_message(REPORT, period_label="November", is_admin=False)
    assert_valid_message(message)
    text = "\n".join(all_text([message]))
    assert "Your spend · November" in text and "$1.2346" in text
    assert "U0ALICE" not in text and "C0GENERAL" not in text and "By model" not in text


def test_home_view_is_a_valid_home_tab_with_a_daily_table() -> None:
    for is_admin in (True, False):
        view = home_view(report=REPORT, daily=DAILY, is_admin=is_admin, command="/orchestrate")
        assert view["type"] == "home"
        assert 0 < len(view["blocks"]) <= 100
        assert View(**view).to_dict()["blocks"] == view["blocks"]
        for block in view["blocks"]:
            assert_valid_block(block)
        daily = view["blocks"][-1]["text"]["text"]
        assert daily.count("\n2026-") == 31  # the latest 31 days, newest last
        assert "2026-12-10    39 runs     $0.3900  ▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇" in daily
        assert ("Top people" in str(view)) is is_admin
