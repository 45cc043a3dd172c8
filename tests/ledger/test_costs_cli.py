"""The operator's `costs` command and the period parser the Slack command shares."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from blocks import period_label
from bot.cli.costs import costs_command
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import open_ledger, parse_period, read_period
from bot.settings import Settings

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=5)  # periods end at now, exclusive


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("today", utc(2026, 11, 18)),
        ("week", utc(2026, 11, 12)),
        ("month", utc(2026, 11, 1)),
        ("1d", utc(2026, 11, 18)),
        ("7d", utc(2026, 11, 12)),
        ("30d", utc(2026, 10, 20)),
        (" Month ", utc(2026, 11, 1)),
        ("2026-09-30", utc(2026, 9, 30)),
    ],
)
def test_periods_run_from_a_utc_midnight_to_now(text: str, since: datetime) -> None:
    assert parse_period(text, NOW) == (since, NOW)


def test_a_range_still_under_way_counts_up_to_now() -> None:
    # Asked on 2026-11-18: this month as a range is the month so far, not a refusal.
    assert parse_period("2026-11-01..2026-11-30", NOW) == (utc(2026, 11, 1), NOW)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("yesterday", "is not a period"),
        ("2026-12-01", "in the future"),
        ("", "is not a period"),
        ("2026-11-10..2026-11-01", "ends before it starts"),
        ("2026-12-01..2026-12-31", "in the future"),
        ("2026-11-01..soon", "is not a period"),
    ],
)
def test_bad_periods_say_what_to_type(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_period(text, NOW)
    message = str(caught.value)
    assert "today, week, month, last-month" in message or "earlier date first" in message


def test_zero_days_and_too_many_days_get_the_same_clear_error() -> None:
    problems = []
    for text in ("0d", "99999d"):
        with pytest.raises(ValueError) as caught:
            parse_period(text, NOW)
        problems.append(str(caught.value).replace(text, "Nd", 1))
    assert problems[0] == problems[1]
    assert "use 1d to 3660d" in problems[0]


@pytest.mark.parametrize(
    ("text", "since", "until", "label"),
    [
        ("last-month", utc(2026, 10, 1), utc(2026, 11, 1), "October 2026"),
        ("2026-11-01..2026-11-15", utc(2026, 11, 1), utc(2026, 11, 16), "2026-11-01 to 2026-11-15"),
        ("2026-11-10..2026-11-18", utc(2026, 11, 10), NOW, "2026-11-10 to 2026-11-18"),
        ("2026-11-03..2026-11-03", utc(2026, 11, 3), utc(2026, 11, 4), "2026-11-03"),
        ("week", utc(2026, 11, 12), NOW, "last 7 days"),
        ("month", utc(2026, 11, 1), NOW, "November 2026 to date"),
        ("1d", utc(2026, 11, 18), NOW, "today"),
        ("2026-09-30", utc(2026, 9, 30), NOW, "since 2026-09-30"),
    ],
)
def test_periods_are_named_for_what_they_cover(
    text: str, since: datetime, until: datetime, label: str
) -> None:
    period = read_period(text, NOW)
    assert period.bounds == (since, until)
    assert period_label(period) == label


def test_last_month_in_january_is_december_of_the_year_before() -> None:
    period = read_period("last-month", datetime(2027, 1, 5, tzinfo=UTC))
    assert period.bounds == (utc(2026, 12, 1), utc(2027, 1, 1))
    assert period_label(period) == "December 2026"


@pytest.fixture
async def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    async with open_ledger(url) as ledger:
        for team, user, model, cost in (
            ("T1", "U1", "claude-opus-5-5", "0.044"),
            ("T2", "U9", "claude-haiku-5-5", "0.00065"),
            ("T2", "U9", "claude-mystery-9", None),
        ):
            run_id = await ledger.runs.start_run(
                team_id=team, channel_id="C1", user_id=user, question="q", now=EARLIER
            )
            await ledger.runs.record_call(
                run_id,
                CallRecord(
                    role="plan",
                    model=model,
                    usage=TokenUsage(input_tokens=1_000, output_tokens=2_000),
                    cost_usd=None if cost is None else Decimal(cost),
                    latency_s=1.0,
                    outcome="ok",
                ),
                now=EARLIER,
            )
    return Settings.from_env({"DATABASE_URL": url}, dotenv=None)


async def test_summary_covers_every_workspace_and_flags_unpriced(settings: Settings) -> None:
    out = io.StringIO()

    assert await costs_command(settings, since="today", csv=False, out=out, now=NOW) == 0

    text = out.getvalue()
    assert "Total      $0.0447 + 1 unpriced calls" in text
    assert "Runs       3 (0 refused by budgets), 3 calls" in text
    assert "claude-mystery-9" in text and "unpriced" in text
    assert [line.split()[0] for line in text.splitlines() if line.startswith("U")] == [
        "U1",
        "U9",
    ]


async def test_csv_lists_every_call_since_the_period_start(settings: Settings) -> None:
    out = io.StringIO()

    assert await costs_command(settings, since="7d", csv=True, out=out, now=NOW) == 0

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("call_id,created_at,run_id,team_id")
    assert len(lines) == 4


async def test_a_bad_period_exits_2_with_the_reason_on_stderr(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()

    assert await costs_command(settings, since="fortnight", csv=False, out=out, now=NOW) == 2

    assert out.getvalue() == ""
    assert "'fortnight' is not a period" in capsys.readouterr().err


async def test_an_unreachable_database_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, dotenv=None
    )

    code = await costs_command(settings, since="today", csv=False, out=io.StringIO(), now=NOW)

    assert code == 1
    assert "cannot read the ledger" in capsys.readouterr().err


async def test_figures_that_include_an_estimate_are_marked_approximate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    async with open_ledger(url) as ledger:
        run_id = await ledger.runs.start_run(
            team_id="T1", channel_id="C1", user_id="U1", question="q", now=EARLIER
        )
        cut_off = TokenUsage(input_tokens=1_000, output_tokens=400, estimated=True)
        await ledger.runs.record_call(
            run_id,
            CallRecord(
                role="example",
                model="claude-haiku-5-5",
                usage=cut_off,
                cost_usd=Decimal("0.0003"),
                latency_s=1.0,
                outcome="cancelled",
            ),
            now=EARLIER,
        )
    settings = Settings.from_env({"DATABASE_URL": url}, dotenv=None)
    out = io.StringIO()

    assert await costs_command(settings, since="today", csv=False, out=out, now=NOW) == 0

    text = out.getvalue()
    assert "Total      ≈$0.0003" in text
    assert "Per run    ≈$0.0003" in text
    assert "cut off mid-answer" in text
    (row,) = [line for line in text.splitlines() if line.startswith("claude-haiku-5-5")]
    assert "≈400" in row and "≈$0.0003" in row
