"""Spending views: the `/orchestrate costs` reply and the App Home tab.

Admins see the workspace: total, runs, average per run, refused runs, the saving against running
everything on the strategy model, and the split by model, by role, by person and by channel.
Members see the same headline figures for their own runs (the ledger hands us a report filtered
to them) and never a breakdown or anyone else's spending, whatever the report holds. Calls
without a list price are counted beside the dollars (`$1.2346 + 3 unpriced calls`), never
passed off as $0. Lists are cut to their first rows: the ledger orders them, we only show them.
The Home tab adds a day-by-day table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from blocks.cost import ESTIMATE_NOTE, approx, includes_estimate, shared_labels
from blocks.ephemeral import command_usage
from blocks.escape import channel_mention, escape, user_mention
from blocks.feedback_view import eval_blocks, feedback_blocks
from blocks.format import format_count, format_saving, format_usd, model_label
from blocks.message import (
    MAX_HOME_BLOCKS,
    SECTION_LIMIT,
    Block,
    OutboundMessage,
    context,
    divider,
    fallback,
    fields_section,
    header,
    section,
)
from blocks.split import clip
from blocks.types import (
    CostReportView,
    DayCostView,
    EvalHeadlineView,
    FeedbackReportView,
    ModelCostView,
    RoleCostView,
    SpenderView,
)

TOP_ROWS = 10
DAILY_ROWS = 31
_BAR_WIDTH = 20
PRICES_STALE_DAYS = 90


def costs_summary_message(
    report: CostReportView,
    *,
    period_label: str,
    is_admin: bool,
    feedback: FeedbackReportView | None = None,
) -> OutboundMessage:
    """The `costs` reply: the workspace's spending for admins, a member's own otherwise;
    admins also see the period's 👍/👎 feedback when it is given."""
    blocks = cost_report_blocks(report, period_label=period_label, is_admin=is_admin)
    if is_admin and feedback is not None:
        blocks += feedback_blocks(feedback, period_label=period_label)
    who = "Workspace" if is_admin else "Your"
    text = f"{who} orchestrate spend, {escape(period_label)}: {_total(report)}"
    return OutboundMessage(text=fallback(text), blocks=tuple(blocks))


def cost_report_blocks(report: CostReportView, *, period_label: str, is_admin: bool) -> list[Block]:
    """Header, headline figures and, for admins only, the breakdowns."""
    title = f"orchestrate spend · {period_label}" if is_admin else f"Your spend · {period_label}"
    blocks = [header(title), fields_section(_headline(report, is_admin=is_admin))]
    if not is_admin:
        return blocks
    # A spender's dollars leave its unpriced calls out, and the ledger does not count those.
    note = " · _priced calls only_" if report.unpriced_calls else ""
    return [
        *blocks,
        _list_section("By model", _model_lines(report.by_model[:TOP_ROWS])),
        _list_section("By role", [_role_line(role) for role in report.by_role[:TOP_ROWS]]),
        _list_section("Top people", _spender_lines(report.top_users, user_mention), note),
        _list_section("Top channels", _spender_lines(report.top_channels, channel_mention), note),
    ]


def _headline(report: CostReportView, *, is_admin: bool) -> list[str]:
    fields = [
        f"*Total*\n{_total(report)}",
        f"*Runs*\n{report.runs:,}" + _followups(report),
        f"*Average per run*\n{_average(report)}",
    ]
    if is_admin:
        fields.append(f"*Refused runs*\n{report.refused_runs:,}")
    if report.all_strategy_model_usd is not None and report.calls > report.unpriced_calls:
        fields.append(_all_on_strategy_model(report, report.all_strategy_model_usd))
    if includes_estimate(report.by_model):
        fields.append(f"_{ESTIMATE_NOTE}_")
    return fields


def _followups(report: CostReportView) -> str:
    """` + 2 follow-ups`: answered in the runs' threads, their cost in every figure here."""
    return f" + {format_count(report.followups, 'follow-up')}" if report.followups else ""


def _total(report: CostReportView) -> str:
    amount = _amount(report.total_usd, calls=report.calls, unpriced_calls=report.unpriced_calls)
    return approx(amount, includes_estimate(report.by_model))


def _amount(cost_usd: Decimal, *, calls: int, unpriced_calls: int) -> str:
    """`$0.8000`, `$0.8000 + 3 unpriced calls`, or `unpriced` when no call had a price."""
    if not unpriced_calls:
        return format_usd(cost_usd)
    if unpriced_calls >= calls:
        return format_usd(None)
    return f"{format_usd(cost_usd)} + {format_count(unpriced_calls, 'unpriced call')}"


def _average(report: CostReportView) -> str:
    """`$0.0193`; `at least $0.0193` when some calls are unpriced (the figure leaves them out);
    `≈$0.0193` when it includes an estimate."""
    average = report.average_per_run_usd
    if average is None or not report.runs:
        return "—"
    if report.unpriced_calls >= report.calls:
        return format_usd(None)
    figure = approx(format_usd(average), includes_estimate(report.by_model))
    return f"at least {figure}" if report.unpriced_calls else figure


def _all_on_strategy_model(report: CostReportView, all_usd: Decimal) -> str:
    on = escape(model_label(report.strategy_model))
    # The same tokens priced on another model: an estimate in, an estimate out.
    figure = approx(format_usd(all_usd), includes_estimate(report.by_model))
    if report.saving_pct is not None:
        figure += f" · {format_saving(report.saving_pct)}"
    if report.unpriced_calls:
        figure += "\n_priced calls only_"
    return f"*All on {on}*\n{figure}"


def _model_lines(by_model: Sequence[ModelCostView]) -> list[str]:
    """`Opus · 64 calls · $0.8000`; two versions of one family also show their ids."""
    shared = shared_labels(by_model)
    lines = []
    for entry in by_model:
        name = escape(model_label(entry.model))
        if model_label(entry.model) in shared:
            name += f" `{escape(entry.model)}`"
        cost = approx(format_usd(entry.cost_usd), entry.usage.estimated)
        lines.append(f"{name} · {format_count(entry.calls, 'call')} · {cost}")
    return lines


def _role_line(role: RoleCostView) -> str:
    amount = _amount(role.cost_usd, calls=role.calls, unpriced_calls=role.unpriced_calls)
    return f"{escape(role.role)} · {format_count(role.calls, 'call')} · {amount}"


def _spender_lines(spenders: Sequence[SpenderView], show: Callable[[str], str]) -> list[str]:
    """`<@U0ALICE> · 40 runs · $0.9000`: `show` builds a mention only from a well-formed id."""
    return [
        f"{show(s.id)} · {format_count(s.runs, 'run')} · {format_usd(s.cost_usd)}"
        for s in spenders[:TOP_ROWS]
    ]


def _list_section(title: str, lines: Sequence[str], note: str = "") -> Block:
    body = "\n".join(lines) if lines else "_none yet_"
    return section(clip(f"*{title}*{note}\n{body}", SECTION_LIMIT))


def home_view(
    *,
    report: CostReportView,
    daily: Sequence[DayCostView],
    is_admin: bool,
    command: str = "/orchestrate",
    period_label: str = "last 30 days",
    prices_as_of: date | None = None,
    today: date | None = None,
    admin_blocks: Sequence[Block] = (),
    feedback: FeedbackReportView | None = None,
    last_eval: EvalHeadlineView | None = None,
) -> dict[str, Any]:
    """The App Home tab (`views.publish`): how to use the command, spending, spending by day,
    the date of the price table the figures use, and for admins the 👍/👎 `feedback`, the
    headline of the `last_eval` beside it, and `admin_blocks` (budgets)."""
    votes = feedback_blocks(feedback, period_label=period_label) if feedback else []
    votes += eval_blocks(last_eval) if last_eval else []
    cmd = escape(command)
    blocks = [
        header("orchestrate"),
        section(
            f"Ask a question with {command_usage(command)} in any channel I'm in: "
            "Opus plans, Haiku illustrates each part, Sonnet reviews, and the thread ends with "
            "the bill. Mention `@orchestrate` in a run's thread to follow up (a question, one "
            "part redone, or a rethink), or in a discussion to plan it; the follow-ups count in "
            "the figures below. "
            f"`{cmd} help` for more."
        ),
        divider(),
        *cost_report_blocks(report, period_label=period_label, is_admin=is_admin),
        *(votes if is_admin else ()),
        *_daily_blocks(daily),
        *_prices_blocks(prices_as_of, today, is_admin=is_admin),
        *(admin_blocks if is_admin else ()),
    ]
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}


def _prices_blocks(as_of: date | None, today: date | None, *, is_admin: bool) -> list[Block]:
    """When the list prices behind every figure were taken; admins are warned once they are
    more than 90 days old (Anthropic changes prices, and a stale table misstates spend)."""
    if as_of is None:
        return []
    line = f"Dollar figures use list prices as of {as_of.isoformat()}."
    age = (today - as_of).days if today is not None else 0
    if is_admin and age > PRICES_STALE_DAYS:
        line = (
            f"⚠ The price table is {age:,} days old (list prices as of {as_of.isoformat()}): "
            "figures may be off. Ask an operator to check the prices and update PRICES_FILE."
        )
    return [context(line)]


def _daily_blocks(daily: Sequence[DayCostView]) -> list[Block]:
    """The most recent days with runs as a monospace table with a bar per day, newest last
    (days without runs are left out: a month of zero lines hides the days that matter)."""
    rows = [row for row in list(daily)[-DAILY_ROWS:] if row.runs or row.cost_usd]
    if not rows:
        return []
    top = max(row.cost_usd for row in rows)
    lines = [_daily_line(row, top) for row in rows]
    table = "```\n" + "\n".join(lines) + "\n```"
    return [section(f"*By day*\n{table}")]  # 31 short lines stay far below a section's limit


def _daily_line(row: DayCostView, top: Decimal) -> str:
    bar = "▇" * round(_BAR_WIDTH * row.cost_usd / top) if top > 0 else ""
    day = row.day.isoformat()
    return f"{day}  {format_count(row.runs, 'run'):>9}  {format_usd(row.cost_usd):>10}  {bar}"
