"""A run's cost footer: what each model was asked, what it cost, what Opus alone would have.

One line per model (label, calls, tokens in and out, dollars), then the total, the comparison with
running every step on the strategy model, and the elapsed time. Tokens in count the whole prompt
(uncached input, cache writes and reads); tokens out already include thinking, shown alongside.
An unpriced model reads `unpriced` and makes the total say which model has no list price: a bill
that silently says $0 would be a lie. A figure that includes an estimate (a call cut off before
the API counted its output) reads `≈`, and the totals line says why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from blocks.escape import escape
from blocks.format import (
    format_count,
    format_elapsed,
    format_saving,
    format_usd,
    model_label,
)
from blocks.message import Block, context
from blocks.types import CostSummaryView, ModelCostView, UsageView

APPROX = "≈"
ESTIMATE_NOTE = "≈ includes calls cut off mid-answer, estimated from what they had streamed"


def includes_estimate(by_model: Sequence[ModelCostView]) -> bool:
    return any(entry.usage.estimated for entry in by_model)


def approx(figure: str, estimated: bool) -> str:
    """`≈$0.0192` when the figure includes an estimate, else the figure as it is."""
    return f"{APPROX}{figure}" if estimated else figure


def cost_footer(cost: CostSummaryView, elapsed_s: float) -> list[Block]:
    """Context blocks: the per-model lines (if any calls were made), then the totals line."""
    lines = model_lines(cost.by_model)
    totals = context(totals_line(cost, elapsed_s))
    return [context("\n".join(lines)), totals] if lines else [totals]


def model_lines(by_model: Sequence[ModelCostView]) -> list[str]:
    """`*Haiku* · 4 calls · 8,200 in / 3,100 out · $0.0024`, one per model."""
    shared = shared_labels(by_model)
    return [_model_line(entry, show_id=model_label(entry.model) in shared) for entry in by_model]


def shared_labels(by_model: Sequence[ModelCostView]) -> set[str]:
    """Labels that more than one model would read as (two Opus versions): name those by id too."""
    counts = Counter(model_label(entry.model) for entry in by_model)
    return {label for label, count in counts.items() if count > 1}


def _model_line(entry: ModelCostView, *, show_id: bool) -> str:
    name = f"*{escape(model_label(entry.model))}*"
    if show_id:
        name += f" `{escape(entry.model)}`"
    calls = format_count(entry.calls, "call")
    cost = approx(format_usd(entry.cost_usd), entry.usage.estimated)
    return f"{name} · {calls} · {token_summary(entry.usage)} · {cost}"


def token_summary(usage: UsageView) -> str:
    """`12,400 in / 3,100 out (2,000 thinking)`: prompt incl. cache; output incl. thinking."""
    prompt = (
        usage.input_tokens
        + usage.cache_write_5m_tokens
        + usage.cache_write_1h_tokens
        + usage.cache_read_tokens
    )
    out = f"{prompt:,} in / {approx(f'{usage.output_tokens:,}', usage.estimated)} out"
    if not usage.thinking_tokens:
        return out
    return f"{out} ({approx(f'{usage.thinking_tokens:,}', usage.estimated)} thinking)"


def totals_line(cost: CostSummaryView, elapsed_s: float) -> str:
    """`*Total $0.0192* · all on Opus: $0.1234 · saved 84% · ⏱ 12.3 s`."""
    estimated = includes_estimate(cost.by_model)
    parts = [f"*Total {total_text(cost)}*"]
    if cost.total_usd is not None and cost.all_strategy_model_usd is not None:
        label = escape(model_label(cost.strategy_model))
        all_on = approx(format_usd(cost.all_strategy_model_usd), estimated)
        parts.append(f"all on {label}: {all_on}")
        if cost.saving_pct is not None:
            parts.append(format_saving(cost.saving_pct))
    parts.append(f"⏱ {format_elapsed(elapsed_s)}")
    if estimated:
        parts.append(f"_{ESTIMATE_NOTE}_")
    return " · ".join(parts)


def total_text(cost: CostSummaryView) -> str:
    """`$0.0192`, or `unpriced (claude-x has no list price)` naming the unpriced models."""
    if cost.total_usd is not None:
        return approx(format_usd(cost.total_usd), includes_estimate(cost.by_model))
    unpriced = [escape(entry.model) for entry in cost.by_model if entry.cost_usd is None]
    if not unpriced:
        return format_usd(None)
    verb = "has" if len(unpriced) == 1 else "have"
    return f"{format_usd(None)} ({', '.join(unpriced)} {verb} no list price)"
