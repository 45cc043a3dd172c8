"""Spending views: the `/orchestrate costs` reply and the App Home tab.

Admins see the workspace: total, runs, average per run, the saving against running everything on
the strategy model, and the split by model, by role, by person and by channel. Members see the
same headline figures for their own runs (the ledger hands us a report filtered to them) and how
to use the command, never anyone else's spending. Lists are cut to their first rows: the ledger
orders them, we only show them. The Home tab adds a day-by-day table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from blocks.ephemeral import command_usage
from blocks.escape import channel_mention, escape, user_mention
from blocks.format import format_count, format_saving, format_usd, model_label
from blocks.message import (
    MAX_HOME_BLOCKS,
    SECTION_LIMIT,
    Block,
    OutboundMessage,
    divider,
    fallback,
    fields_section,
    header,
    section,
)
from blocks.split import clip
from blocks.types import CostReportView, DailyCost, Tally

TOP_ROWS = 10
DAILY_ROWS = 31
_BAR_WIDTH = 20


def costs_summary_message(
    report: CostReportView,
    *,
    period_label: str,
    is_admin: bool,
    strategy_model: str | None = None,
) -> OutboundMessage:
    """The `costs` reply: the workspace's spending for admins, a member's own otherwise."""
    blocks = cost_report_blocks(
        report, period_label=period_label, is_admin=is_admin, strategy_model=strategy_model
    )
    who = "Workspace" if is_admin else "Your"
    text = f"{who} orchestrate spend, {escape(period_label)}: {format_usd(report.total_usd)}"
    return OutboundMessage(text=fallback(text), blocks=tuple(blocks))


def cost_report_blocks(
    report: CostReportView,
    *,
    period_label: str,
    is_admin: bool,
    strategy_model: str | None = None,
) -> list[Block]:
    """Header, headline figures and, for admins, the breakdowns."""
    title = f"orchestrate spend · {period_label}" if is_admin else f"Your spend · {period_label}"
    blocks = [header(title), fields_section(_headline(report, strategy_model))]
    if not is_admin:
        return blocks
    return [
        *blocks,
        _tally_section("By model", report.by_model, lambda m: escape(model_label(m)), "call"),
        _tally_section("By role", report.by_role, escape, "call"),
        _tally_section("Top people", report.top_users, user_mention, "run"),
        _tally_section("Top channels", report.top_channels, channel_mention, "run"),
    ]


def _headline(report: CostReportView, strategy_model: str | None) -> list[str]:
    fields = [
        f"*Total*\n{format_usd(report.total_usd)}",
        f"*Runs*\n{report.runs:,}",
        f"*Average per run*\n{format_usd(report.avg_per_run_usd) if report.runs else '—'}",
    ]
    if report.all_strategy_model_usd is not None:
        on = escape(model_label(strategy_model)) if strategy_model else "the strategy model"
        saving = f" · {format_saving(report.saving_pct)}" if report.saving_pct is not None else ""
        fields.append(f"*All on {on}*\n{format_usd(report.all_strategy_model_usd)}{saving}")
    return fields


def _tally_section(
    title: str, rows: Sequence[Tally], show: Callable[[str], str], noun: str
) -> Block:
    lines = [
        f"{show(key)} · {format_count(count, noun)} · {format_usd(cost)}"
        for key, count, cost in rows[:TOP_ROWS]
    ]
    body = "\n".join(lines) if lines else "_none yet_"
    return section(clip(f"*{title}*\n{body}", SECTION_LIMIT))


def home_view(
    *,
    report: CostReportView,
    daily: Sequence[DailyCost],
    is_admin: bool,
    command: str = "/orchestrate",
    period_label: str = "last 30 days",
    strategy_model: str | None = None,
) -> dict[str, Any]:
    """The App Home tab (`views.publish`): how to use the command, spending, spending by day."""
    cmd = escape(command)
    blocks = [
        header("orchestrate"),
        section(
            f"Ask a question with {command_usage(command)} in any channel I'm in: "
            "Opus plans, Haiku illustrates each part, Sonnet reviews, and the thread ends with "
            "the bill. "
            f"`{cmd} help` for more."
        ),
        divider(),
        *cost_report_blocks(
            report, period_label=period_label, is_admin=is_admin, strategy_model=strategy_model
        ),
        *_daily_blocks(daily),
    ]
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}


def _daily_blocks(daily: Sequence[DailyCost]) -> list[Block]:
    """The most recent days as a monospace table with a bar per day, newest last."""
    rows = list(daily)[-DAILY_ROWS:]
    if not rows:
        return []
    top = max((cost for _, cost, _ in rows if cost is not None), default=Decimal(0))
    lines = [_daily_line(day.isoformat(), cost, runs, top) for day, cost, runs in rows]
    table = "```\n" + "\n".join(lines) + "\n```"
    return [section(f"*By day*\n{table}")]  # 31 short lines stay far below a section's limit


def _daily_line(day: str, cost: Decimal | None, runs: int, top: Decimal) -> str:
    bar = "▇" * round(_BAR_WIDTH * cost / top) if cost is not None and top > 0 else ""
    return f"{day}  {format_count(runs, 'run'):>9}  {format_usd(cost):>10}  {bar}"
