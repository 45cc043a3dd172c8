"""Admins' view of the 👍/👎 votes: how many, how satisfied, per model set, cost per 👍.

Shown under the spending in App Home and in `/orchestrate costs`, for admins only (a vote is
a person's opinion of someone's run: members see their own spending, not others' votes).
The ledger hands the figures; here they are worded. Satisfaction is 👍 ÷ all votes; the cost
per 👍 is the period's spend divided by its 👍s, so spend can be weighed against usefulness.
"""

from __future__ import annotations

from decimal import Decimal

from blocks.escape import escape
from blocks.format import format_count, format_percent, format_usd, model_label
from blocks.message import SECTION_LIMIT, Block, section
from blocks.split import clip
from blocks.types import EvalHeadlineView, FeedbackReportView, ModelSetFeedbackView

MODEL_SET_ROWS = 8


def feedback_blocks(report: FeedbackReportView, *, period_label: str) -> list[Block]:
    """One section: the period's votes, satisfaction and cost per 👍, then per model set."""
    title = f"*Feedback* · {period_label}"
    if not report.up and not report.down:
        return [section(f"{title}\n_No votes yet: 👍/👎 sit under each review._")]
    headline = (
        f"👍 {report.up:,} · 👎 {report.down:,} · {_satisfied(report.satisfaction_pct)}"
        f" ({format_count(report.up + report.down, 'vote')} on "
        f"{format_count(report.voted_runs, 'run')}) · "
        f"{_per_up(report.cost_per_up_usd)}"
    )
    lines = [_model_set_line(entry) for entry in report.by_model_set[:MODEL_SET_ROWS]]
    body = "\n".join([title, headline, "*By model set*", *lines])
    return [section(clip(body, SECTION_LIMIT))]


def eval_blocks(headline: EvalHeadlineView) -> list[Block]:
    """The last eval's headline: orchestrate's wins, ties and losses against all-Opus, and
    its cost as a share of all-Opus's, measured (not the footers' prediction)."""
    ratio = (
        f"{format_percent(headline.orchestrate_usd / headline.baseline_usd * 100)} of all-Opus's"
        if headline.baseline_usd
        else "all-Opus's cost unknown"
    )
    where = "real API" if headline.live else "offline stand-ins, not real figures"
    lines = [
        f"*Last eval* · {headline.finished_at:%Y-%m-%d} · {where}",
        f"Against all-Opus: {headline.wins:,} won · {headline.ties:,} tied · "
        f"{headline.losses:,} lost of {format_count(headline.questions, 'question')}, "
        f"judged by {escape(model_label(headline.judge_model))}",
        f"Cost {format_usd(headline.orchestrate_usd)} against {format_usd(headline.baseline_usd)}"
        f" all on Opus: {ratio}",
    ]
    return [section(clip("\n".join(lines), SECTION_LIMIT))]


def _satisfied(pct: Decimal | None) -> str:
    return f"{format_percent(pct)} satisfied" if pct is not None else "no votes"


def _per_up(cost: Decimal | None) -> str:
    return f"{format_usd(cost)} per 👍" if cost is not None else "no 👍 yet"


def _model_set_line(entry: ModelSetFeedbackView) -> str:
    names = " + ".join(model_label(m) for m in entry.models) or "no calls"
    return f"• {names} — 👍 {entry.up:,} · 👎 {entry.down:,} · {_satisfied(entry.satisfaction_pct)}"
