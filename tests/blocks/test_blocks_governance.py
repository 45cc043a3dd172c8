"""The budgets modal and the admin's Home section: valid Block Kit within Slack's limits, filled
with what is in force, and harmless whatever ids or values they are given."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from blocks_sample_data import HOSTILE
from slack_checks import assert_valid_block
from slack_sdk.models.views import View

from blocks import budgets_home_blocks, budgets_modal
from blocks.governance import BLOCK_USER, BLOCK_WORKSPACE, MAX_CHANNEL_ROWS, field_error
from bot.ledger import BudgetSettings, SettingChange
from bot.sandbox.slack.views import check_modal, initial_state

SETTINGS = BudgetSettings(
    workspace_monthly_usd=Decimal("250"),
    user_daily_usd=Decimal("0.05"),
    channel_monthly_usd=(("C0GENERAL", Decimal("20")), ("G0TEAM", Decimal("7.5"))),
    alert_thresholds_pct=(50, 80, 100),
    alert_channel="C0ALERTS",
    allowed_channels=("C0GENERAL", "G0TEAM"),
)


def test_the_modal_is_a_valid_slack_modal_filled_with_the_budgets_in_force() -> None:
    view = budgets_modal(SETTINGS)
    View(**view).to_dict()  # slack_sdk's own validators: title, blocks, submit…
    check_modal(view)  # and the sandbox's, which refuses what Slack refuses
    state = initial_state(view)
    assert state[BLOCK_WORKSPACE]["value"]["value"] == "250"
    assert state[BLOCK_USER]["value"]["value"] == "0.05"
    assert state["channel:G0TEAM"]["value"]["value"] == "7.5"
    assert state["alert_channel"]["value"]["selected_conversation"] == "C0ALERTS"
    assert state["allowed_channels"]["value"]["selected_conversations"] == ["C0GENERAL", "G0TEAM"]
    assert state["thresholds"]["value"]["value"] == "50, 80, 100"


def test_the_modal_stays_under_100_blocks_with_many_channel_budgets() -> None:
    many = BudgetSettings(
        channel_monthly_usd=tuple((f"C{n:08d}", Decimal(n + 1)) for n in range(200))
    )
    view = budgets_modal(many)
    check_modal(view)
    assert len(view["blocks"]) <= 100
    assert sum(b.get("block_id", "").startswith("channel:") for b in view["blocks"]) == (
        MAX_CHANNEL_ROWS
    )


def test_the_home_section_shows_budgets_changes_and_the_button_harmlessly() -> None:
    changes = (
        SettingChange("user_daily_usd", "2", "0.05", "U0ADMIN", datetime(2026, 12, 1, tzinfo=UTC)),
        SettingChange("channel_monthly_usd:C0GENERAL", None, "20", HOSTILE,
                      datetime(2026, 11, 30, tzinfo=UTC)),
        SettingChange("allowed_channels", "", "C0GENERAL,G0TEAM", "U0OWNER",
                      datetime(2026, 11, 29, tzinfo=UTC)),
    )  # fmt: skip
    blocks = budgets_home_blocks(SETTINGS, changes)
    for block in blocks:
        assert_valid_block(block)
    text = json.dumps(blocks, ensure_ascii=False)
    assert "$250.0000" in text and "$0.0500" in text and "<#C0ALERTS>" in text
    assert "<@U0ADMIN> changed the budget per person per day: $2.0000 → $0.0500" in text
    assert "none → <#C0GENERAL>, <#G0TEAM>" in text
    assert "<!channel>" not in text and "<!here>" not in text
    assert "orchestrate.budgets.open" in text


def test_every_field_error_says_what_to_type() -> None:
    problems = (
        "not_a_number",
        "not_positive",
        "too_large",
        "too_precise",
        "budget_without_channel",
        "channel_without_budget",
        "bad_thresholds",
    )
    for problem in problems:
        assert field_error(problem).endswith(".")  # type: ignore[arg-type]
