"""What admins are told without asking: a budget threshold crossed, and the weekly digest.

`budget_alert_message` names the threshold, the figures and what happens next;
`weekly_digest_message` sums up a week: total and runs, spend by model, the top channels and
people, the saving against running everything on the strategy model, and the week's 👍/👎 votes with
their satisfaction when anyone voted (worded as App Home and `costs` word them). Both are
posted in the admins' alert channel or their DMs.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from blocks.costs_view import cost_report_blocks
from blocks.escape import escape
from blocks.feedback_view import feedback_blocks
from blocks.format import format_usd
from blocks.message import Block, OutboundMessage, context, fallback, header, section, sections
from blocks.types import CostReportView, FeedbackReportView

TOP_SHOWN = 5


def budget_alert_message(
    *,
    spent_usd: Decimal,
    budget_usd: Decimal,
    month_label: str,
    threshold_pct: int = 80,
    command: str = "/orchestrate",
) -> OutboundMessage:
    """A soft threshold of the workspace's monthly budget was crossed (posted once a month)."""
    share = int(spent_usd * 100 / budget_usd) if budget_usd else 100
    line = (
        f"⚠ orchestrate has passed {threshold_pct}% of this workspace's budget for "
        f"{escape(month_label)}: {format_usd(spent_usd)} spent of {format_usd(budget_usd)} "
        f"({share}%). Runs that would pass the budget are refused until next month, or until "
        "an admin raises it (App Home → Budgets)."
    )
    detail = f"See who and where with `{escape(command)} costs month`."
    return OutboundMessage(text=fallback(line), blocks=(*sections(line), context(detail)))


def weekly_digest_message(
    report: CostReportView,
    *,
    first: date,
    last: date,
    feedback: FeedbackReportView | None = None,
) -> OutboundMessage:
    """The week's digest for admins: the admin report's figures, top 5 lists, and the
    week's votes when there are any (a quiet week's digest does not nag about voting)."""
    label = f"week of {first:%Y-%m-%d} to {last:%Y-%m-%d}"
    body: list[Block] = cost_report_blocks(report, period_label=label, is_admin=True)
    # The report's own title is replaced by the digest's; its lists are cut to the top 5.
    blocks: list[Block] = [header(f"Weekly digest · {label}"), *body[1:]]
    if feedback is not None and (feedback.up or feedback.down):
        blocks += feedback_blocks(feedback, period_label=label)
    text = f"orchestrate weekly digest, {label}: {report.runs:,} runs"
    return OutboundMessage(text=fallback(text), blocks=tuple(_top5(blocks)))


def _top5(blocks: list[Block]) -> list[Block]:
    """Lists in the admin report show up to 10 rows; the digest keeps each to its top 5."""
    kept: list[Block] = []
    for block in blocks:
        text = (block.get("text") or {}).get("text") if block.get("type") == "section" else None
        if isinstance(text, str) and text.startswith(("*Top people*", "*Top channels*")):
            title, *rows = text.split("\n")
            block = section("\n".join([title, *rows[:TOP_SHOWN]]))
        kept.append(block)
    return kept
