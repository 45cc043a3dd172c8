"""An eval's report: per question and overall, as Markdown, JSON, CSV and one SVG chart.

Win / tie / loss are orchestrate's against the all-Opus baseline. The 95% interval is the
Wilson score interval of orchestrate's share of wins among the decisive questions (wins ÷
(wins + losses)): ties say neither answer was better, so they are reported beside it, not
split into it, and Wilson stays inside [0, 1] and honest at the small counts an eval has.
Quality is the judge's mean rubric score (1-5) per arm; quality per dollar divides it by
what the arm cost. The chart (cost against judged quality per question, one point per arm
and a line joining a question's two) is written here as SVG text: no plotting library, a
file any browser opens, and its numbers checkable in a test.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Any

from blocks import format_usd
from bot.cli.eval.runner import QuestionResult

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Overall:
    questions: int
    judged: int
    wins: int
    ties: int
    losses: int
    interval: tuple[float, float] | None  # Wilson 95% on wins among decisive
    orchestrate_usd: Decimal
    baseline_usd: Decimal
    judge_usd: Decimal
    predicted_all_opus_usd: Decimal
    orchestrate_wall_s: float
    baseline_wall_s: float
    orchestrate_quality: float | None
    baseline_quality: float | None

    @property
    def cost_ratio(self) -> Decimal | None:
        return self.orchestrate_usd / self.baseline_usd if self.baseline_usd else None

    def quality_per_dollar(self, arm: str) -> float | None:
        quality = self.orchestrate_quality if arm == "orchestrate" else self.baseline_quality
        cost = self.orchestrate_usd if arm == "orchestrate" else self.baseline_usd
        judged = self.judged or 1
        return None if quality is None or not cost else quality / float(cost / judged)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None with no trials)."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def overall(results: Sequence[QuestionResult]) -> Overall:
    outcomes = [r.outcome for r in results]
    wins, ties, losses = (outcomes.count(o) for o in ("win", "tie", "loss"))
    judged = [r for r in results if r.quality["orchestrate"] is not None]
    return Overall(
        questions=len(results),
        judged=wins + ties + losses,
        wins=wins,
        ties=ties,
        losses=losses,
        interval=wilson(wins, wins + losses),
        orchestrate_usd=sum((r.orchestrate.cost for r in results), Decimal(0)),
        baseline_usd=sum((r.baseline.cost for r in results), Decimal(0)),
        judge_usd=sum((Decimal(r.judge_cost_usd) for r in results), Decimal(0)),
        predicted_all_opus_usd=sum(
            (Decimal(r.orchestrate.predicted_all_opus_usd or 0) for r in results), Decimal(0)
        ),
        orchestrate_wall_s=sum(r.orchestrate.wall_s for r in results),
        baseline_wall_s=sum(r.baseline.wall_s for r in results),
        orchestrate_quality=_mean([r.quality["orchestrate"] for r in judged]),
        baseline_quality=_mean([r.quality["baseline"] for r in judged]),
    )


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 3) if present else None


def _quality_per_dollar(quality: float | None, cost: Decimal) -> float | None:
    return None if quality is None or not cost else round(quality / float(cost), 1)


def markdown(
    results: Sequence[QuestionResult], *, judge_model: str, live: bool, setup: str = ""
) -> str:
    o = overall(results)
    source = "the real Claude API" if live else "the offline stand-ins (figures are not real)"
    lines = [
        f"# orchestrate eval: {o.questions} question(s), judged by {judge_model}, on {source}",
        "",
        *([f"Settings: {setup}", ""] if setup else []),
        "| # | question | orchestrate | all-Opus | footer's all-Opus | wall s (orch / Opus) "
        "| quality (orch / Opus) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        q = r.quality
        lines.append(
            f"| {r.index + 1}{_repeat(r)} | {_cell(r.question, 60)} "
            f"| {format_usd(r.orchestrate.cost)}{_failed(r.orchestrate.problem)} "
            f"| {format_usd(r.baseline.cost)}{_failed(r.baseline.problem)} "
            f"| {_usd(r.orchestrate.predicted_all_opus_usd)} "
            f"| {r.orchestrate.wall_s:.1f} / {r.baseline.wall_s:.1f} "
            f"| {_q(q['orchestrate'])} / {_q(q['baseline'])} | {r.outcome or 'not judged'} |"
        )
    interval = (
        f"{o.interval[0]:.0%}–{o.interval[1]:.0%}" if o.interval else "n/a (no decisive question)"
    )
    decisive = o.wins + o.losses
    ratio = f"{o.cost_ratio:.1%}" if o.cost_ratio is not None else "n/a"
    qpd_o, qpd_b = o.quality_per_dollar("orchestrate"), o.quality_per_dollar("baseline")
    lines += [
        "",
        "## Overall",
        "",
        f"- **Orchestrate against all-Opus: {o.wins} win(s), {o.ties} tie(s), {o.losses} "
        f"loss(es)** of {o.judged} judged. Win share among decisive questions: "
        f"{(o.wins / decisive if decisive else 0):.0%}, 95% Wilson interval {interval}.",
        f"- **Cost:** orchestrate {format_usd(o.orchestrate_usd)}, all-Opus "
        f"{format_usd(o.baseline_usd)} measured ({ratio} of it); the footers predicted "
        f"{format_usd(o.predicted_all_opus_usd)} all on Opus. Judging cost "
        f"{format_usd(o.judge_usd)}.",
        f"- **Wall time:** orchestrate {o.orchestrate_wall_s:.1f} s, all-Opus "
        f"{o.baseline_wall_s:.1f} s in all.",
        f"- **Quality (mean rubric score, 1-5):** orchestrate {_q(o.orchestrate_quality)}, "
        f"all-Opus {_q(o.baseline_quality)}; per dollar (score ÷ mean cost per question): "
        f"{_n(qpd_o)} and {_n(qpd_b)}.",
    ]
    return "\n".join(lines) + "\n"


def _repeat(r: QuestionResult) -> str:
    return f".{r.repeat + 1}" if r.repeat else ""


def _cell(text: str, limit: int) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _failed(problem: str | None) -> str:
    return " (failed)" if problem else ""


def _usd(raw: str | None) -> str:
    return format_usd(Decimal(raw)) if raw is not None else "n/a"


def _q(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def _n(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "n/a"


CSV_COLUMNS = (
    "index", "repeat", "question", "outcome", "orchestrate_usd", "baseline_usd",
    "predicted_all_opus_usd", "judge_usd", "orchestrate_wall_s", "baseline_wall_s",
    "orchestrate_quality", "baseline_quality", "orchestrate_quality_per_usd",
    "baseline_quality_per_usd", "orchestrate_problem", "baseline_problem",
)  # fmt: skip


def csv_text(results: Sequence[QuestionResult]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        q = r.quality
        writer.writerow([
            r.index + 1, r.repeat + 1, r.question, r.outcome or "", r.orchestrate.cost_usd,
            r.baseline.cost_usd, r.orchestrate.predicted_all_opus_usd or "", r.judge_cost_usd,
            r.orchestrate.wall_s, r.baseline.wall_s, _blank(q["orchestrate"]),
            _blank(q["baseline"]),
            _blank(_quality_per_dollar(q["orchestrate"], r.orchestrate.cost)),
            _blank(_quality_per_dollar(q["baseline"], r.baseline.cost)),
            r.orchestrate.problem or "", r.baseline.problem or "",
        ])  # fmt: skip
    return out.getvalue()


def _blank(value: float | None) -> str:
    return "" if value is None else str(value)


def json_report(
    results: Sequence[QuestionResult], *, judge_model: str, live: bool, setup: str = ""
) -> dict[str, Any]:
    o = overall(results)
    return {
        "live": live,
        "settings": setup,
        "judge_model": judge_model,
        "interval": "Wilson 95% of wins among decisive questions (wins + losses)",
        "overall": {
            "questions": o.questions,
            "judged": o.judged,
            "wins": o.wins,
            "ties": o.ties,
            "losses": o.losses,
            "win_share_interval_95": list(o.interval) if o.interval else None,
            "orchestrate_usd": str(o.orchestrate_usd),
            "baseline_usd": str(o.baseline_usd),
            "predicted_all_opus_usd": str(o.predicted_all_opus_usd),
            "judge_usd": str(o.judge_usd),
            "cost_ratio": None if o.cost_ratio is None else str(round(o.cost_ratio, 4)),
            "orchestrate_wall_s": round(o.orchestrate_wall_s, 3),
            "baseline_wall_s": round(o.baseline_wall_s, 3),
            "orchestrate_quality": o.orchestrate_quality,
            "baseline_quality": o.baseline_quality,
            "orchestrate_quality_per_usd": o.quality_per_dollar("orchestrate"),
            "baseline_quality_per_usd": o.quality_per_dollar("baseline"),
        },
        "questions": [r.to_json() for r in results],
    }


# The chart: cost (x, log scale: the arms differ by several times) against quality (y, 1-5).
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 720, 440, 70, 20, 40, 60
_COLOURS = {"orchestrate": "#1f77b4", "baseline": "#d62728"}


def chart_svg(results: Sequence[QuestionResult]) -> str:
    """Cost per question (log x) against judged quality (y), one point per arm."""
    points = [
        (r, arm, float(getattr(r, arm).cost), r.quality[arm])
        for r in results
        for arm in ("orchestrate", "baseline")
        if r.quality[arm] is not None and getattr(r, arm).cost > 0
    ]
    costs = [p[2] for p in points] or [0.01, 0.1]
    low = 10 ** math.floor(math.log10(min(costs)))
    high = 10 ** math.ceil(math.log10(max(costs)))
    if high <= low:
        high = low * 10

    def x(cost: float) -> float:
        span = math.log10(high) - math.log10(low)
        return _LEFT + (math.log10(cost) - math.log10(low)) / span * (_W - _LEFT - _RIGHT)

    def y(quality: float) -> float:
        return _TOP + (5 - quality) / 4 * (_H - _TOP - _BOTTOM)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="22" text-anchor="middle" font-size="14">'
        "Cost against judged quality, per question</text>",
    ]
    for q in (1, 2, 3, 4, 5):
        out.append(
            f'<line x1="{_LEFT}" y1="{y(q):.1f}" x2="{_W - _RIGHT}" y2="{y(q):.1f}" '
            f'stroke="#ddd"/><text x="{_LEFT - 8}" y="{y(q) + 4:.1f}" text-anchor="end">{q}</text>'
        )
    decade = low
    while decade <= high * 1.0001:
        out.append(
            f'<line x1="{x(decade):.1f}" y1="{_TOP}" x2="{x(decade):.1f}" y2="{_H - _BOTTOM}" '
            f'stroke="#ddd"/><text x="{x(decade):.1f}" y="{_H - _BOTTOM + 16}" '
            f'text-anchor="middle">{escape(format_usd(Decimal(str(decade))))}</text>'
        )
        decade *= 10
    out.append(
        f'<text x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 18}" text-anchor="middle">'
        "cost per question (log scale)</text>"
        f'<text x="18" y="{(_TOP + _H - _BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(_TOP + _H - _BOTTOM) / 2})">judged quality (1-5)</text>'
    )
    by_question: dict[str, list[tuple[float, float]]] = {}
    for r, _, cost, quality in points:
        by_question.setdefault(r.key, []).append((x(cost), y(quality or 0)))
    for pair in by_question.values():
        if len(pair) == 2:
            (x1, y1), (x2, y2) = pair
            out.append(
                f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#bbb"/>'
            )
    for r, arm, cost, quality in points:
        title = escape(f"{r.index + 1}. {arm}: {format_usd(Decimal(str(cost)))}, {quality}")
        out.append(
            f'<circle class="{arm}" cx="{x(cost):.1f}" cy="{y(quality or 0):.1f}" r="5" '
            f'fill="{_COLOURS[arm]}"><title>{title}</title></circle>'
        )
    for i, (arm, label) in enumerate((("orchestrate", "orchestrate"), ("baseline", "all-Opus"))):
        lx = _LEFT + 10 + i * 130
        out.append(
            f'<circle cx="{lx}" cy="{_TOP - 8}" r="5" fill="{_COLOURS[arm]}"/>'
            f'<text x="{lx + 10}" y="{_TOP - 4}">{label}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
