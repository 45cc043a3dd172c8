"""The admin dashboard: a period's spend drawn as charts, from the ledger's own reports.

Spend per day by model and the saving against running every step on the strategy model
come from `Reports.summary` for each UTC day of the period (the report that `/orchestrate
costs` words, so the two never disagree); runs and follow-ups per day from the same
summaries; top channels and people from the period's summary; 👍/👎 and the cost of each 👍
from `Interactions.feedback`; budgets from the governance settings in force and this month's
spend. Every chart is a `charts.Table`, so the page's tables and the CSV hold exactly what
the charts draw.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape

from blocks import format_usd, model_label
from bot.ledger import CostReport, FeedbackReport, initial_settings, periods
from bot.web.charts import Table, csv_rows, figure
from bot.web.deps import WebDeps

MAX_DAYS = 92


@dataclass(frozen=True, slots=True)
class Dashboard:
    days: int
    period: CostReport
    feedback: FeedbackReport
    tables: tuple[Table, ...]
    budget_lines: tuple[str, ...]


async def build(
    deps: WebDeps, team_id: str, *, days: int, now: datetime | None = None
) -> Dashboard:
    now = now or datetime.now(UTC)
    today = periods.midnight(now.date())
    first = today - timedelta(days=days - 1)
    reports = deps.reports
    per_day: list[tuple[str, CostReport]] = []
    for n in range(days):
        since = first + timedelta(days=n)
        until = min(since + timedelta(days=1), now)
        per_day.append(
            (since.date().isoformat(), await reports.summary(team_id, since=since, until=until))
        )
    period = await reports.summary(team_id, since=first, until=now)
    feedback = await deps.feedback.feedback(team_id, since=first, until=now)
    tables = (
        _spend(per_day),
        _saving(per_day, model_label(deps.settings.strategy_model)),
        Table("runs", "Runs and follow-ups per day", "Day", ("Runs", "Follow-ups"),
              tuple((day, (r.runs, r.followups)) for day, r in per_day), unit=""),
        Table("channels", "Top channels", "Channel", ("Spent", "Runs"),
              tuple((s.id, (s.cost_usd, s.runs)) for s in period.top_channels)),
        Table("people", "Top people", "Person", ("Spent", "Runs"),
              tuple((s.id, (s.cost_usd, s.runs)) for s in period.top_users)),
        Table("feedback", "👍 and 👎", "Vote", ("Votes",),
              (("👍 up", (feedback.up,)), ("👎 down", (feedback.down,))), unit=""),
    )  # fmt: skip
    return Dashboard(days, period, feedback, tables, await _budgets(deps, team_id, now))


def _spend(per_day: list[tuple[str, CostReport]]) -> Table:
    models = sorted({m.model for _, r in per_day for m in r.by_model})
    series = tuple(f"{model_label(m)} ({m})" for m in models)
    rows = tuple((day, tuple(_model_cost(r, m) for m in models)) for day, r in per_day)
    return Table("spend", "Spend per day by model", "Day", series, rows)


def _saving(per_day: list[tuple[str, CostReport]], strategy: str) -> Table:
    rows = tuple((day, (r.total_usd, r.all_strategy_model_usd or Decimal(0))) for day, r in per_day)
    title = f"Spend against all on {strategy}"
    return Table("saving", title, "Day", ("Spent", f"All on {strategy}"), rows)


def _model_cost(report: CostReport, model: str) -> Decimal:
    return next((m.cost_usd or Decimal(0) for m in report.by_model if m.model == model), Decimal(0))


async def _budgets(deps: WebDeps, team_id: str, now: datetime) -> tuple[str, ...]:
    current = await deps.governance.budget_settings(team_id, initial_settings(deps.settings))
    spent = await deps.budgets.workspace_month_spent(team_id, now)
    lines = []
    if current.workspace_monthly_usd is not None:
        lines.append(_use("Workspace, this month", spent, current.workspace_monthly_usd))
    else:
        lines.append(f"Workspace, this month: {format_usd(spent)} spent, no budget set")
    if current.user_daily_usd is not None:
        # One budget per person: the use of those who spent most today (as its check counts).
        lines.append(f"Each person, per day: {format_usd(current.user_daily_usd)}")
        today = periods.day_bounds(now)
        spenders = await deps.reports.summary(team_id, since=today[0], until=now)
        for person in spenders.top_users:
            used = await deps.budgets.spent(team_id, today, user_id=person.id)
            lines.append(_use(f"Person {person.id}, today", used, current.user_daily_usd))
    month = periods.month_bounds(now)
    for channel, limit in current.channel_monthly_usd or ():
        used = await deps.budgets.spent(team_id, month, channel_id=channel)
        lines.append(_use(f"Channel {channel}, this month", used, limit))
    return tuple(lines)


def _use(what: str, spent: Decimal, limit: Decimal) -> str:
    pct = (spent / limit * 100) if limit else Decimal(0)
    return f"{what}: {format_usd(spent)} of {format_usd(limit)} ({pct:.0f}% used)"


def charts_html(board: Dashboard) -> str:
    period, feedback = board.period, board.feedback
    per_up = format_usd(feedback.spent_usd / feedback.up) if feedback.up else "no 👍 yet"
    saving = f"{period.saving_pct:.0f}%" if period.saving_pct is not None else "—"
    unpriced = (
        f" ({period.unpriced_calls} unpriced calls not counted)" if period.unpriced_calls else ""
    )
    kinds = ("stacked", "lines", "stacked", "bars", "bars", "bars")
    items = (
        f"Spent <strong>{format_usd(period.total_usd)}</strong>{unpriced}",
        f"Saving against all on the strategy model: <strong>{saving}</strong>",
        f"<strong>{period.runs:,}</strong> runs, <strong>{period.followups:,}</strong> follow-ups",
        f"👍 up {feedback.up:,} · 👎 down {feedback.down:,} · "
        f"cost per 👍: <strong>{per_up}</strong>",
    )
    summary = '<ul class="headline">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
    budgets = "".join(f"<li>{escape(line)}</li>" for line in board.budget_lines)
    charts = "".join(figure(t, k) for t, k in zip(board.tables, kinds, strict=True))
    return (
        f'{summary}<section aria-labelledby="budgets-h"><h2 id="budgets-h">Budgets and use</h2>'
        f'<ul class="budgets">{budgets}</ul></section>{charts}'
    )


def to_csv(board: Dashboard) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(csv_rows(board.tables))
    return out.getvalue()
