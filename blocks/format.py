"""How figures read in Slack: model labels, dollars, token counts, percentages and durations.

Kept apart from the builders so every message writes `$0.0192`, `12.3 s` or `Opus` the same
way. Money is rounded half-up to four decimals (a hundredth of a cent: runs cost cents) and an
unpriced amount is written `unpriced`, never `$0`. `blocks/` cannot use `bot.pricing`, so this is
the only formatter of dollars on the Slack side. Outputs are plain text without `&`, `<` or `>`,
except `model_label`, whose fallback is a model id and is escaped where it is shown.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from blocks.types import PeriodView

_FAMILIES = ("Opus", "Sonnet", "Haiku")
_CENT_HUNDREDTHS = Decimal("0.0001")
UNPRICED = "unpriced"


def model_label(model_id: str) -> str:
    """`Opus`, `Sonnet` or `Haiku` when the id names one of them, else the id itself."""
    lowered = model_id.lower()
    return next((family for family in _FAMILIES if family.lower() in lowered), model_id)


def format_usd(amount: Decimal | None) -> str:
    """`$0.0192` (four decimals, half-up, thousands separated), or `unpriced` for None."""
    if amount is None:
        return UNPRICED
    rounded = amount.quantize(_CENT_HUNDREDTHS, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.4f}"


def format_count(count: int, noun: str) -> str:
    """`1 call`, `3 calls`, `12,400 runs`: English plurals for our regular nouns."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def format_percent(pct: Decimal) -> str:
    """A whole percentage, rounded half-up: `84%`."""
    return f"{pct.quantize(Decimal(1), rounding=ROUND_HALF_UP)}%"


def format_saving(pct: Decimal) -> str:
    """`saved 84%`, or `cost 12% more` when mixing models was dearer than the strategy model."""
    if pct < 0:
        return f"cost {format_percent(-pct)} more"
    return f"saved {format_percent(pct)}"


def format_elapsed(seconds: float) -> str:
    """`12.3 s` under a minute, `2 min 05 s` above."""
    if seconds < 59.95:
        return f"{max(seconds, 0.0):.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def period_label(period: PeriodView) -> str:
    """A period named for what it covers: `last 7 days`, `December 2026 to date`,
    `November 2026`, `since 2026-11-01`, `2026-11-01 to 2026-11-15`."""
    match period.kind:
        case "today":
            return "today"
        case "days":
            return "today" if period.days == 1 else f"last {period.days:,} days"
        case "this_month":
            return f"{period.first:%B %Y} to date"
        case "last_month":
            return f"{period.first:%B %Y}"
        case "since_date":
            return f"since {period.first.isoformat()}"
        case "range":
            if period.first == period.last:
                return period.first.isoformat()
            return f"{period.first.isoformat()} to {period.last.isoformat()}"
