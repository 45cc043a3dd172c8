"""Reporting periods and budget windows, all in UTC: the one place that says what "today" means.

`parse_period` turns what an admin types (`today`, `week`, `month`, `7d`, `2026-11-01`) into
a half-open [since, until) interval ending now; the operator CLI and the Slack
`/orchestrate costs …` command share it. `day_bounds` and `month_bounds` are the budget
windows (a user's day, a workspace's calendar month). A run belongs to the period in which it
started. Naive datetimes are read as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

MAX_DAYS = 3660
_DAYS = re.compile(r"(\d{1,4})d")
PERIOD_HELP = "use today, week, month, a number of days like 7d, or a date like 2026-11-01"


def utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (naive values are taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = midnight(utc(now).date())
    return start, start + timedelta(days=1)


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    first = utc(now).date().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return midnight(first), midnight(following)


def parse_period(text: str, now: datetime) -> tuple[datetime, datetime]:
    """[since, until=now) for `today`, `week` (7 days), `month` (calendar), `Nd`, ISO date."""
    now = utc(now)
    today = now.date()
    word = text.strip().lower()
    if word == "today":
        return midnight(today), now
    if word == "week":
        return midnight(today - timedelta(days=6)), now
    if word == "month":
        return month_bounds(now)[0], now
    if match := _DAYS.fullmatch(word):
        return midnight(today - timedelta(days=_day_count(match.group(1)) - 1)), now
    return midnight(_past_date(word, today)), now


def _day_count(digits: str) -> int:
    days = int(digits)
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"{digits}d is out of range: use 1d to {MAX_DAYS}d")
    return days


def _past_date(word: str, today: date) -> date:
    try:
        day = date.fromisoformat(word)
    except ValueError:
        raise ValueError(f"{word!r} is not a period: {PERIOD_HELP}") from None
    if day > today:
        raise ValueError(f"{word} is in the future: {PERIOD_HELP}")
    return day
