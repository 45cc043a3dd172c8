"""Reporting periods and budget windows, all in UTC: the one place that says what "today" means.

`read_period` turns what an admin types into a half-open [since, until) interval and says what
kind of period it is, so a report can be named for what it covers (`week` is the last 7 days,
not a calendar week; `month` is this calendar month so far): `today`, `week`, `month`,
`last-month` (the whole previous calendar month), `Nd` (N days including today, 1–3660), an ISO
date (from that day until now) or an inclusive range `YYYY-MM-DD..YYYY-MM-DD` (a range
still under way, this month's say, counts up to now; one that starts tomorrow is refused).
The operator CLI and the Slack `/orchestrate costs …` command share it; `parse_period`
gives just the bounds.
`day_bounds`, `month_bounds` and `week_bounds` are the budget and digest windows (a user's day,
a workspace's calendar month, an ISO week from Monday). A run belongs to the period in which it
started. Naive datetimes are read as UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

MAX_DAYS = 3660
_DAYS = re.compile(r"(\d+)d")
_RANGE = re.compile(r"(\S+?)\s*\.\.\s*(\S+)")
PERIOD_HELP = (
    "use today, week, month, last-month, a number of days like 7d, a date like 2026-11-01, "
    "or a range like 2026-11-01..2026-11-15"
)
PeriodKind = Literal["today", "days", "this_month", "last_month", "since_date", "range"]


@dataclass(frozen=True, slots=True)
class Period:
    """[since, until) and what it is: `days` counts the days of a `days` period (week is 7),
    `first` and `last` are the first and last UTC days it covers (inclusive)."""

    kind: PeriodKind
    since: datetime
    until: datetime
    days: int
    first: date
    last: date

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return self.since, self.until


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


def week_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The ISO week (Monday 00:00 UTC to the next Monday) that `now` falls in."""
    today = utc(now).date()
    monday = today - timedelta(days=today.weekday())
    return midnight(monday), midnight(monday + timedelta(days=7))


def parse_period(text: str, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) of the period `text` names (see `read_period`)."""
    return read_period(text, now).bounds


def read_period(text: str, now: datetime) -> Period:
    """The period `text` names, ending now at the latest; ValueError says what to type."""
    now = utc(now)
    today = now.date()
    word = text.strip().lower()
    if word == "today":
        return _period("today", midnight(today), now)
    if word == "week":
        return _days(7, now)
    if word == "month":
        return _period("this_month", month_bounds(now)[0], now)
    if word in {"last-month", "lastmonth", "last_month"}:
        end = month_bounds(now)[0]
        return _period("last_month", month_bounds(end - timedelta(days=1))[0], end)
    if match := _DAYS.fullmatch(word):
        return _days(_day_count(match.group(1)), now)
    if match := _RANGE.fullmatch(word):
        return _range(match.group(1), match.group(2), now)
    return _period("since_date", midnight(_past_date(word, today)), now)


def _period(kind: PeriodKind, since: datetime, until: datetime) -> Period:
    last = (until - timedelta(microseconds=1)).date() if until > since else since.date()
    days = (last - since.date()).days + 1
    return Period(kind, since, until, days, since.date(), last)


def _days(count: int, now: datetime) -> Period:
    return _period("days", midnight(now.date() - timedelta(days=count - 1)), now)


def _range(start_text: str, end_text: str, now: datetime) -> Period:
    today = now.date()
    # The end may lie ahead (2026-12-01..2026-12-31 asked on the 7th): what has happened
    # so far is what there is to count, so the range is cut at now below.
    first, last = _past_date(start_text, today), _date(end_text)
    if last < first:
        raise ValueError(f"{first}..{last} ends before it starts: put the earlier date first")
    if (last - first).days + 1 > MAX_DAYS:
        raise ValueError(f"{first}..{last} is longer than {MAX_DAYS} days: {PERIOD_HELP}")
    return _period("range", midnight(first), min(midnight(last + timedelta(days=1)), now))


def _day_count(digits: str) -> int:
    days = int(digits)
    if not 1 <= days <= MAX_DAYS:
        # One message for 0d and 99999d alike: the range is what the admin needs to know.
        raise ValueError(f"{days}d is not a number of days we report on: use 1d to {MAX_DAYS}d")
    return days


def _date(word: str) -> date:
    try:
        return date.fromisoformat(word)
    except ValueError:
        raise ValueError(f"{word!r} is not a period: {PERIOD_HELP}") from None


def _past_date(word: str, today: date) -> date:
    day = _date(word)
    if day > today:
        raise ValueError(f"{word} is in the future: {PERIOD_HELP}")
    return day
