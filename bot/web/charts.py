"""Charts drawn on the server as SVG: stacked columns, lines, horizontal bars.

Each chart is built from a `Table` (its numbers), so the same figures are drawn, listed in
the `<details>` table under the chart, and written to the CSV: a chart can never say what
its table does not. Labels are escaped; the SVG has a `<title>` and `role="img"` for screen
readers, whose users get the table as well. No script, no asset from outside the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

PALETTE = ("#3b6fd8", "#d8733b", "#2e9e6b", "#9b59b6", "#c0392b", "#7f8c8d", "#b7950b")
WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 720, 260, 72, 40, 16
BAR_ROW = 28.0  # a horizontal bar's row at most, so two rows are not two slabs

Number = int | Decimal


@dataclass(frozen=True, slots=True)
class Table:
    """A chart's numbers: one row per label (a day, a channel), one column per series."""

    key: str
    title: str
    label: str  # what the rows are: "Day", "Channel"
    series: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Number, ...]], ...]
    unit: str = "$"  # "$" or "" (counts)

    def cell(self, value: Number) -> str:
        if self.unit == "$":
            return f"${Decimal(value):,.4f}"
        return f"{value:,}"


def figure(table: Table, kind: str, *, note: str = "") -> str:
    """The chart, its caption and its numbers one click away."""
    draw = {"stacked": stacked_columns, "lines": lines, "bars": bars}[kind]
    svg = draw(table) if table.rows else '<p class="pending">Nothing in this period.</p>'
    caption = escape(table.title) + (f' <span class="note">{escape(note)}</span>' if note else "")
    return (
        f'<figure class="chart" id="chart-{table.key}"><figcaption><h2>{caption}</h2></figcaption>'
        f"{svg}<details><summary>The numbers</summary>{numbers(table)}</details></figure>"
    )


def numbers(table: Table) -> str:
    head = "".join(f'<th scope="col">{escape(s)}</th>' for s in table.series)
    body = "".join(
        f'<tr><th scope="row">{escape(label)}</th>'
        + "".join(f"<td>{escape(table.cell(v))}</td>" for v in values)
        + "</tr>"
        for label, values in table.rows
    )
    return (
        f'<table><thead><tr><th scope="col">{escape(table.label)}</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _svg(table: Table, body: str, legend: str, *, height: float = HEIGHT + 24) -> str:
    return (
        f'<svg class="plot" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-labelledby="svg-{table.key}-t" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="svg-{table.key}-t">{escape(table.title)}</title>{body}{legend}</svg>'
    )


def _legend(series: Sequence[str]) -> str:
    items, x = [], float(PAD_LEFT)
    for i, name in enumerate(series):
        items.append(
            f'<rect x="{x}" y="{HEIGHT + 8}" width="10" height="10" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="{HEIGHT + 17}" class="legend">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return "".join(items)


def _axis(top: float, table: Table) -> str:
    """The value axis: zero, half and the top, with faint grid lines."""
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    marks = []
    for fraction in (0.0, 0.5, 1.0):
        y = PAD_TOP + plot_h * (1 - fraction)
        value = top * fraction
        places = 2 if top >= 10 else 4  # cents hide a small day's spend
        text = f"${value:,.{places}f}" if table.unit == "$" else f"{value:,.0f}"
        marks.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{text}</text>'
        )
    return "".join(marks)


def _top(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    return top if top > 0 else 1.0


def stacked_columns(table: Table) -> str:
    totals = [float(sum(values)) for _, values in table.rows]
    top = _top(totals)
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = (WIDTH - PAD_LEFT) / len(table.rows)
    width = max(step * 0.7, 1.0)
    parts = [_axis(top, table)]
    every = max(1, len(table.rows) // 10)
    for i, (label, values) in enumerate(table.rows):
        x = PAD_LEFT + i * step + (step - width) / 2
        y = float(PAD_TOP + plot_h)
        for j, value in enumerate(values):
            h = plot_h * float(value) / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(label)} · '
                f"{escape(table.series[j])}: {escape(table.cell(value))}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + width / 2:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" class="tick" '
                f'text-anchor="middle">{escape(label[-5:])}</text>'
            )
    return _svg(table, "".join(parts), _legend(table.series))


def lines(table: Table) -> str:
    top = _top([float(v) for _, values in table.rows for v in values])
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    n = len(table.rows)
    step = (WIDTH - PAD_LEFT - 24) / max(n - 1, 1)  # room for the last label
    parts = [_axis(top, table)]
    for j, name in enumerate(table.series):
        points = " ".join(
            f"{PAD_LEFT + i * step:.1f},{PAD_TOP + plot_h * (1 - float(values[j]) / top):.1f}"
            for i, (_, values) in enumerate(table.rows)
        )
        colour = PALETTE[j % len(PALETTE)]
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
    every = max(1, n // 10)
    for i, (label, _) in enumerate(table.rows):
        if i % every == 0:
            parts.append(
                f'<text x="{PAD_LEFT + i * step:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
                f'class="tick" text-anchor="middle">{escape(label[-5:])}</text>'
            )
    return _svg(table, "".join(parts), _legend(table.series))


def bars(table: Table) -> str:
    """Horizontal bars of the first series (one per row), labelled with their figure."""
    top = _top([float(values[0]) for _, values in table.rows])
    row_h = min((HEIGHT - PAD_TOP) / max(len(table.rows), 1), BAR_ROW)
    label_w = 180
    parts = []
    for i, (label, values) in enumerate(table.rows):
        y = PAD_TOP + i * row_h
        w = (WIDTH - label_w - 110) * float(values[0]) / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row_h * 0.6:.1f}" class="tick" '
            f'text-anchor="end">{escape(label[:24])}</text>'
            f'<rect x="{label_w}" y="{y + row_h * 0.15:.1f}" width="{w:.1f}" '
            f'height="{row_h * 0.7:.1f}" fill="{PALETTE[0]}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + row_h * 0.6:.1f}" class="tick">'
            f"{escape(table.cell(values[0]))}</text>"
        )
    return _svg(table, "".join(parts), "", height=PAD_TOP + len(table.rows) * row_h + 8)


def csv_rows(tables: Sequence[Table]) -> list[list[str]]:
    """Every table in long form: chart, label, series, value (plain numbers)."""
    rows = [["chart", "label", "series", "value"]]
    for table in tables:
        for label, values in table.rows:
            rows.extend(
                [table.key, label, name, str(value)]
                for name, value in zip(table.series, values, strict=True)
            )
    return rows
