"""Help, errors, the `costs` reply and App Home: valid, harmless, and members see only their own.

The cost views are fed the ledger's real report types (`bot.ledger.types`), so a renamed field
fails here as well as in the mypy conformance test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from blocks_sample_data import HAIKU, HOSTILE, OPUS
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
    channel_unavailable_message,
    costs_summary_message,
    error_message,
    help_message,
    home_view,
    question_too_long_messages,
)
from bot.core.pricing import ModelCost
from bot.core.usage import TokenUsage
from bot.ledger.types import BudgetRefusal, CostReport, DayCost, RoleCost, Spender

REPORT = CostReport(
    team_id="T0TEAM",
    user_id=None,
    since=datetime(2026, 11, 1, tzinfo=UTC),
    until=datetime(2026, 12, 1, tzinfo=UTC),
    runs=64,
    refused_runs=2,
    calls=320,
    total_usd=Decimal("1.23456"),
    unpriced_calls=0,
    by_model=(
        ModelCost(OPUS, 64, TokenUsage(64_000, 32_000), Decimal("0.8")),
        ModelCost(HAIKU, 256, TokenUsage(512_000, 128_000), Decimal("0.43456")),
    ),
    by_role=(
        RoleCost("plan", 64, Decimal("0.8"), 0),
        RoleCost("example", 256, Decimal("0.43456"), 0),
    ),
    top_users=(Spender("U0ALICE", 40, Decimal("0.9")), Spender(HOSTILE, 1, Decimal("0.01"))),
    top_channels=(Spender("C0GENERAL", 50, Decimal("1.0")), Spender("<!here>", 1, Decimal(0))),
    strategy_model=OPUS,
    all_strategy_model_usd=Decimal("7.5"),
)
WITH_UNPRICED = replace(
    REPORT,
    calls=323,
    unpriced_calls=3,
    by_model=(*REPORT.by_model, ModelCost("claude-x", 3, TokenUsage(300, 100), None)),
    by_role=(
        RoleCost("plan", 64, Decimal("0.8"), 0),
        RoleCost("example", 259, Decimal("0.43456"), 3),
    ),
)
ALL_UNPRICED = replace(
    REPORT,
    runs=1,
    calls=3,
    total_usd=Decimal(0),
    unpriced_calls=3,
    by_model=(ModelCost("claude-x", 3, TokenUsage(300, 100), None),),
    by_role=(RoleCost("example", 3, Decimal(0), 3),),
    top_users=(Spender("U0ALICE", 1, Decimal(0)),),
    top_channels=(Spender("C0GENERAL", 1, Decimal(0)),),
    all_strategy_model_usd=Decimal(0),
)
DAILY = tuple(
    DayCost(day=date(2026, 11, 1) + timedelta(days=n), runs=n, cost_usd=Decimal(n) / 100)
    for n in range(40)
)


def test_help_explains_usage_examples_and_costs_without_calling_anything() -> None:
    message = help_message(max_chars=2000)
    assert_valid_message(message)
    text = "\n".join(all_text([message]))
    assert "`/orchestrate &lt;question&gt;` — a question of up to 2,000 characters" in text
    assert "`/orchestrate costs [today|week|month|last-month|7d|2026-11-01..2026-11-15]`" in text
    assert "/invite @orchestrate" in text
    assert_harmless([message])


def test_error_messages_carry_the_figures_needed_to_act() -> None:
    (too_long,) = question_too_long_messages(length=2412, max_chars=2000, question="q & a")
    assert section_texts(too_long) == [
        "⚠ Your question is 2,412 characters; the limit is 2,000. "
        "Shorten it and ask again. Here is what you typed:",
        "```q &amp; a```",
    ]
    not_in_channel = channel_unavailable_message(error="not_in_channel")
    assert "`/invite @orchestrate`" in section_texts(not_in_channel)[0]
    archived = channel_unavailable_message(error="is_archived")
    assert "archived" in section_texts(archived)[0]
    budget = budget_refused_message(
        BudgetRefusal(
            run_id="r1",
            budget="workspace_monthly",
            limit_usd=Decimal(50),
            spent_usd=Decimal("49.00004"),
            reserved_usd=Decimal("0.75"),
            worst_case_usd=Decimal("0.33"),
            resets_at=datetime(2026, 12, 1, tzinfo=UTC),
        ),
        admins=["U0ADMIN", "<!here>"],
    )
    # The workspace's figures are nobody's business in a refusal: not its limit, spend,
    # holds or what is left. What would help is: when it resets, and who can raise it.
    assert section_texts(budget) == [
        "⚠ This run could cost up to $0.3300, more than is left of this workspace's monthly "
        "budget. Admins can see the month with `/orchestrate costs`."
    ]
    assert budget.blocks[-1]["elements"][0]["text"] == (
        "It resets 2026-12-01 00:00 UTC. To raise it, ask an admin: <@U0ADMIN>, &lt;!here&gt;."
    )
    daily = budget_refused_message(
        BudgetRefusal(
            run_id="r2",
            budget="user_daily",
            limit_usd=Decimal(1),
            spent_usd=Decimal("0.9"),
            reserved_usd=Decimal("0.05"),
            worst_case_usd=Decimal("0.33"),
        )
    )
    assert section_texts(daily) == [
        "⚠ This run could cost up to $0.3300, but your daily budget of $1.0000 has $0.0500 "
        "left ($0.9000 spent, $0.0500 held by your runs in progress)."
    ]
    assert "ask a workspace admin" in daily.blocks[-1]["elements"][0]["text"]
    for message in (too_long, not_in_channel, archived, budget, daily):
        assert_valid_message(message)


def test_error_message_escapes_whatever_it_is_given() -> None:
    message = error_message(f"Could not parse {HOSTILE}")
    assert_valid_message(message)
    assert_harmless([message])


def test_admin_costs_reply_shows_the_workspace() -> None:
    message = costs_summary_message(REPORT, period_label="November", is_admin=True)
    assert_valid_message(message)
    assert message.text == "Workspace orchestrate spend, November: $1.2346"
    assert message.blocks[0]["text"]["text"] == "orchestrate spend · November"
    fields = [f["text"] for f in message.blocks[1]["fields"]]
    assert fields == [
        "*Total*\n$1.2346",
        "*Runs*\n64",
        "*Average per run*\n$0.0193",
        "*Refused runs*\n2",
        "*All on Opus*\n$7.5000 · saved 84%",
    ]
    by_model, by_role, people, channels = section_texts(message)
    assert by_model.splitlines() == [
        "*By model*",
        "Opus · 64 calls · $0.8000",
        "Haiku · 256 calls · $0.4346",
    ]
    assert by_role.splitlines()[1:] == [
        "plan · 64 calls · $0.8000",
        "example · 256 calls · $0.4346",
    ]
    assert people.splitlines()[1] == "<@U0ALICE> · 40 runs · $0.9000"
    assert channels.splitlines()[1] == "<#C0GENERAL> · 50 runs · $1.0000"
    assert_harmless([message], allowed=("<@U0ALICE>", "<#C0GENERAL>"))


def test_only_well_formed_ids_become_mentions() -> None:
    report = replace(
        REPORT,
        top_users=(Spender("u0lower", 1, Decimal(0)), Spender("<@U0BOB>", 1, Decimal(0))),
        top_channels=(Spender("#general", 1, Decimal(0)),),
    )
    message = costs_summary_message(report, period_label="November", is_admin=True)
    people, channels = section_texts(message)[2:]
    assert people.splitlines()[1:] == [
        "u0lower · 1 run · $0.0000",
        "&lt;@U0BOB&gt; · 1 run · $0.0000",
    ]
    assert channels.splitlines()[1:] == ["#general · 1 run · $0.0000"]
    assert_harmless([message])


def test_unpriced_calls_are_counted_beside_the_dollars() -> None:
    message = costs_summary_message(WITH_UNPRICED, period_label="November", is_admin=True)
    assert_valid_message(message)
    assert message.text == "Workspace orchestrate spend, November: $1.2346 + 3 unpriced calls"
    fields = [f["text"] for f in message.blocks[1]["fields"]]
    assert fields[0] == "*Total*\n$1.2346 + 3 unpriced calls"
    assert fields[2] == "*Average per run*\nat least $0.0193"
    assert fields[4] == "*All on Opus*\n$7.5000 · saved 84%\n_priced calls only_"
    by_model, by_role = section_texts(message)[:2]
    assert by_model.splitlines()[-1] == "claude-x · 3 calls · unpriced"
    assert by_role.splitlines()[-1] == "example · 259 calls · $0.4346 + 3 unpriced calls"


def test_a_report_with_no_priced_call_never_reads_as_zero_dollars() -> None:
    member = costs_summary_message(ALL_UNPRICED, period_label="today", is_admin=False)
    admin = costs_summary_message(ALL_UNPRICED, period_label="today", is_admin=True)
    for message in (member, admin):
        assert_valid_message(message)
        assert message.text.endswith("spend, today: unpriced")
        fields = [f["text"] for f in message.blocks[1]["fields"]]
        assert fields[0] == "*Total*\nunpriced"
        assert fields[2] == "*Average per run*\nunpriced"
        assert not any(f.startswith("*All on") for f in fields)
    assert "$0.0000" not in "\n".join(all_text([member]))
    by_model, by_role, people, channels = section_texts(admin)
    assert by_model.splitlines()[1] == "claude-x · 3 calls · unpriced"
    assert by_role.splitlines()[1] == "example · 3 calls · unpriced"
    # A spender carries no unpriced count: its dollars are marked as covering priced calls only.
    assert people.splitlines() == [
        "*Top people* · _priced calls only_",
        "<@U0ALICE> · 1 run · $0.0000",
    ]
    assert channels.splitlines()[0] == "*Top channels* · _priced calls only_"


def test_costs_reply_takes_the_strategy_model_from_the_report() -> None:
    report = replace(REPORT, strategy_model="claude-sonnet-5-5")
    message = costs_summary_message(report, period_label="November", is_admin=True)
    assert "*All on Sonnet*\n$7.5000 · saved 84%" in [
        f["text"] for f in message.blocks[1]["fields"]
    ]


def test_member_costs_reply_shows_only_their_own_figures() -> None:
    # Handed a workspace report by mistake, the member view still lists no one else.
    message = costs_summary_message(REPORT, period_label="November", is_admin=False)
    assert_valid_message(message)
    assert message.text == "Your orchestrate spend, November: $1.2346"
    assert message.blocks[0]["text"]["text"] == "Your spend · November"
    fields = [f["text"] for f in message.blocks[1]["fields"]]
    assert fields == [
        "*Total*\n$1.2346",
        "*Runs*\n64",
        "*Average per run*\n$0.0193",
        "*All on Opus*\n$7.5000 · saved 84%",
    ]
    text = "\n".join(all_text([message]))
    for absent in ("U0ALICE", "C0GENERAL", "Top people", "Top channels", "By model", "Refused"):
        assert absent not in text
    assert_harmless([message])


def day_table(view: dict[str, Any]) -> str:
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section" and "text" in b]
    return next(text for text in texts if text.startswith("*By day*"))


def test_home_view_is_a_valid_home_tab_with_a_daily_table() -> None:
    for is_admin in (True, False):
        view = home_view(report=REPORT, daily=DAILY, is_admin=is_admin, command="/orchestrate")
        assert view["type"] == "home"
        assert 0 < len(view["blocks"]) <= 100
        assert View(**view).to_dict()["blocks"] == view["blocks"]
        for block in view["blocks"]:
            assert_valid_block(block)
        daily = day_table(view)
        assert daily.count("\n2026-") == 31  # the latest 31 days, newest last
        assert "2026-12-10    39 runs     $0.3900  ▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇▇" in daily
        assert "2026-11-10     0 runs     $0.0000  \n" not in daily  # cut: older than 31 days


def test_home_day_table_leaves_out_days_without_runs() -> None:
    quiet = tuple(replace(day, runs=0, cost_usd=Decimal(0)) if day.day.day % 2 else day
                  for day in DAILY[-31:])  # fmt: skip
    view = home_view(report=REPORT, daily=quiet, is_admin=True)
    daily = day_table(view)
    shown_days = [line.split()[0] for line in daily.splitlines() if line.startswith("2026-")]
    assert shown_days == [d.day.isoformat() for d in quiet if d.runs]
    assert " 0 runs" not in daily


def test_home_shows_the_price_table_date_and_warns_admins_past_90_days() -> None:
    as_of = date(2026, 9, 1)
    fresh = home_view(report=REPORT, daily=DAILY, is_admin=True, prices_as_of=as_of,
                      today=as_of + timedelta(days=90))  # fmt: skip
    stale = home_view(report=REPORT, daily=DAILY, is_admin=True, prices_as_of=as_of,
                      today=as_of + timedelta(days=91))  # fmt: skip
    member = home_view(report=REPORT, daily=DAILY, is_admin=False, prices_as_of=as_of,
                       today=as_of + timedelta(days=91))  # fmt: skip
    assert "list prices as of 2026-09-01" in json.dumps(fresh)
    assert "⚠" not in json.dumps(fresh, ensure_ascii=False)
    assert "91 days old" in json.dumps(stale) and "PRICES_FILE" in json.dumps(stale)
    assert "list prices as of 2026-09-01" in json.dumps(member)
    assert "days old" not in json.dumps(member)
    for view in (fresh, stale, member):
        for block in view["blocks"]:
            assert_valid_block(block)


def test_home_view_stays_within_slacks_limits_with_full_lists() -> None:
    users = tuple(Spender(f"U0USER{n}", 100 - n, Decimal(n)) for n in range(5))
    channels = tuple(Spender(f"C0CHAN{n}", 100 - n, Decimal(n)) for n in range(5))
    report = replace(WITH_UNPRICED, top_users=users, top_channels=channels)
    month = DAILY[-31:]
    for is_admin in (True, False):
        view = home_view(report=report, daily=month, is_admin=is_admin)
        assert len(view["blocks"]) <= 100
        assert len(json.dumps(view, ensure_ascii=False).encode()) <= 250_000
        for block in view["blocks"]:
            assert_valid_block(block)
        text = json.dumps(view)
        assert ("<@U0USER0>" in text and "<#C0CHAN4>" in text) is is_admin
        assert ("U0USER" in text or "C0CHAN" in text or "Top people" in text) is is_admin


def test_a_report_that_includes_estimated_calls_says_approx() -> None:
    opus, haiku = REPORT.by_model
    cut = replace(haiku, usage=replace(haiku.usage, estimated=True))
    report = replace(REPORT, by_model=(opus, cut))

    message = costs_summary_message(report, period_label="November", is_admin=True)

    assert_valid_message(message)
    assert message.text == "Workspace orchestrate spend, November: ≈$1.2346"
    fields = [f["text"] for f in message.blocks[1]["fields"]]
    assert fields[0] == "*Total*\n≈$1.2346"
    assert fields[2] == "*Average per run*\n≈$0.0193"
    assert fields[4].startswith("*All on Opus*\n≈$7.5000 · ")
    assert "cut off mid-answer" in fields[-1]
    by_model = section_texts(message)[0]
    assert by_model.splitlines()[1:] == [
        "Opus · 64 calls · $0.8000",
        "Haiku · 256 calls · ≈$0.4346",
    ]


def test_summaries_count_follow_ups_beside_runs() -> None:
    from dataclasses import replace

    with_followups = costs_summary_message(
        replace(REPORT, followups=3), period_label="month", is_admin=True
    )
    text = json.dumps(with_followups.blocks)
    assert "*Runs*\\n64 + 3 follow-ups" in text
    without = json.dumps(costs_summary_message(REPORT, period_label="month", is_admin=True).blocks)
    assert "follow-up" not in without
