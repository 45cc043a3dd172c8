"""`orchestrate-bot costs`: the operator's view of the ledger, as a text report or a CSV.

`costs_command` reads the ledger named by DATABASE_URL across every workspace: a summary for
the period (`--since today|week|month|Nd|YYYY-MM-DD`, parsed by the same `parse_period` the
Slack `/orchestrate costs` command uses) or, with `--csv`, every call since then for finance.
It returns the process exit code: 0 done, 1 the ledger could not be read (or there is none
at a SQLite path: the command reads, it never creates an empty ledger to report $0 from),
2 a bad period. A reader that leaves early (`--csv | head -1`) raises `BrokenPipeError` to
the command, which exits quietly; it is never reported as a database that cannot write.
"""

from __future__ import annotations

import errno
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO, cast

import blocks
from blocks import format_usd
from bot.core.pricing import ModelCost
from bot.ledger import CostReport, LedgerError, ledger_for, parse_period, read_period
from bot.ledger.sqlite import path_from_url
from bot.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

__all__ = ["costs_command", "parse_period", "render_report"]


async def costs_command(
    settings: Settings,
    *,
    since: str,
    csv: bool,
    out: TextIO,
    now: datetime | None = None,
) -> int:
    """Print the summary (or the CSV of calls) for the period `since` names; an exit code."""
    try:
        period = read_period(since, now or datetime.now(UTC))
    except ValueError as exc:
        print(f"orchestrate-bot costs: --since {exc}", file=sys.stderr)
        return EXIT_USAGE
    if (missing := _missing_sqlite_file(settings.database_url)) is not None:
        print(
            f"orchestrate-bot costs: there is no ledger at {missing} (DATABASE_URL="
            f"{settings.database_url}); set DATABASE_URL to the database the bot writes to.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        async with ledger_for(settings) as ledger:
            if csv:
                csv_out = cast(TextIO, _Output(out))  # the CSV writer needs only write()
                await ledger.export.calls_csv(None, period.since, csv_out, until=period.until)
                return EXIT_OK
            report = await ledger.reports.summary(None, since=period.since, until=period.until)
    except _ReaderLeft:
        raise BrokenPipeError(errno.EPIPE, "the reader of the output left") from None
    except (LedgerError, OSError, ValueError) as exc:
        # ValueError: a malformed PRICES_FILE; OSError: the database cannot be reached.
        print(f"orchestrate-bot costs: cannot read the ledger: {exc}", file=sys.stderr)
        return EXIT_FAILED
    out.write(render_report(report, label=blocks.period_label(period)))
    return EXIT_OK


def _missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file `url` names when there is none (SQLite would create it)."""
    if not url.startswith("sqlite:///"):
        return None
    path = path_from_url(url)
    return None if path.exists() else path


class _ReaderLeft(Exception):
    """stdout's reader has gone. Not an OSError on purpose: the ledger would take a
    BrokenPipeError raised inside its transaction for a database that cannot write."""


class _Output:
    """`out` for the CSV writer, turning a broken pipe into `_ReaderLeft`."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        try:
            return self._out.write(text)
        except BrokenPipeError:
            raise _ReaderLeft from None


def render_report(report: CostReport, *, label: str | None = None) -> str:
    """A plain-text report that fits a terminal: headline figures, then the breakdowns."""
    named = f"{label} " if label else ""
    lines = [
        f"Costs, all workspaces, {named}({report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC)",
        "",
        *_headline(report),
        "",
        *_table(("model", "calls", "input", "output", "cache w", "cache r", "cost"),
                [_model_row(m) for m in report.by_model]),
        "",
        *_table(("role", "calls", "cost"),
                [(r.role, str(r.calls), _cost(r.cost_usd, r.unpriced_calls))
                 for r in report.by_role]),
        "",
        *_table(("top user", "runs", "cost"),
                [(s.id, str(s.runs), format_usd(s.cost_usd)) for s in report.top_users]),
        "",
        *_table(("top channel", "runs", "cost"),
                [(s.id, str(s.runs), format_usd(s.cost_usd)) for s in report.top_channels]),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _headline(report: CostReport) -> list[str]:
    estimated = blocks.includes_estimate(report.by_model)
    per_run = _usd(report.average_per_run_usd, estimated) if report.runs else "-"
    return [
        f"Total      {_cost(report.total_usd, report.unpriced_calls, estimated=estimated)}",
        f"Runs       {report.runs} ({report.refused_runs} refused by budgets), "
        f"{report.calls} calls",
        f"Per run    {per_run}",
        f"Saving     {_saving(report, estimated=estimated)}",
        *([f"           {blocks.ESTIMATE_NOTE}"] if estimated else []),
    ]


def _saving(report: CostReport, *, estimated: bool) -> str:
    if report.all_strategy_model_usd is None:
        return f"unknown ({report.strategy_model} is unpriced)"
    pct = report.saving_pct
    shown = "-" if pct is None else f"{pct.quantize(Decimal('0.1'))}%"
    all_on = _usd(report.all_strategy_model_usd, estimated)
    return f"{shown} vs all on {report.strategy_model} ({all_on})"


def _usd(amount: Decimal | None, estimated: bool) -> str:
    """`$0.0241`, or `≈$0.0241` when the figure includes a cut-off call's estimate."""
    return blocks.approx(format_usd(amount), estimated)


def _cost(amount: Decimal, unpriced: int, *, estimated: bool = False) -> str:
    # An unknown cost is never folded silently into a total that looks complete.
    return _usd(amount, estimated) + (f" + {unpriced} unpriced calls" if unpriced else "")


def _model_row(m: ModelCost) -> tuple[str, ...]:
    u = m.usage
    return (
        m.model,
        str(m.calls),
        f"{u.input_tokens:,}",
        blocks.approx(f"{u.output_tokens:,}", u.estimated),
        f"{u.cache_write_5m_tokens + u.cache_write_1h_tokens:,}",
        f"{u.cache_read_tokens:,}",
        _usd(m.cost_usd, u.estimated),
    )


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    if not rows:
        return [f"{header[0]}: none"]
    widths = [max(len(cells[i]) for cells in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    return [line(header), *(line(cells) for cells in rows)]
