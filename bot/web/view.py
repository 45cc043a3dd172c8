"""A run's page: its events folded into three panes (a pure function), then drawn as HTML.

`fold(run)` turns one run's kept events into a `Panes` value (strategy, examples by
component, review, end) the way the thread's fold does (`bot.slack.thread`), with the same
states: planning, illustrating n of N, reviewing, done, stopped, interrupted, failed. A run
whose row says it ended without an end event (reaped after its instance died) reads as its
row says. `panes_html(page, …)` draws the main run's Strategy, Examples and Review panes
(each headed by the model that wrote it, the ✓/⚠/✗ of each check beside the example it
judges), its bill, then each follow-up (a retry, a question asked in its thread) in order.
Every piece of model or user text goes through `bot.web.markdown` (escaped, links
checked); everything else through `html.escape`. No I/O happens here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from html import escape

from blocks import ESTIMATE_NOTE, approx, format_elapsed, format_usd, includes_estimate, model_label
from blocks.format import format_count, format_saving
from bot.core.events import (
    ExampleFailed,
    ExampleReady,
    ReviewFailed,
    ReviewReady,
    RunFailed,
    RunFinished,
    RunStarted,
    StrategyReady,
)
from bot.core.models import Check, Review, Strategy
from bot.core.pricing import CostSummary
from bot.ledger import PageRun, RunPage
from bot.web.markdown import render, render_inline

VERDICTS = {"ok": ("✓", "looks right"), "warning": ("⚠", "a concern"), "problem": ("✗", "wrong")}


@dataclass(frozen=True, slots=True)
class Example:
    number: int  # 1-based, as the thread numbers them
    name: str
    model: str
    markdown: str | None = None
    reason: str | None = None  # why it failed


@dataclass(frozen=True, slots=True)
class Panes:
    models: tuple[str, str, str] = ("", "", "")
    strategy: Strategy | None = None
    strategy_model: str = ""
    examples: tuple[Example, ...] = ()
    review: Review | None = None
    review_model: str = ""
    review_problem: str | None = None
    end: RunFinished | RunFailed | None = None
    kept: bool = False  # any event was kept (questions are stored)

    @property
    def total(self) -> int:
        return len(self.strategy.components) if self.strategy else 0


def fold(run: PageRun) -> Panes:
    """The panes after every kept event of `run`, in order."""
    panes = Panes(kept=bool(run.events))
    for event in run.events:
        panes = _advance(panes, event)
    return panes


def _advance(panes: Panes, event: object) -> Panes:
    match event:
        case RunStarted(models=models):
            return replace(panes, models=models)
        case StrategyReady(strategy=strategy, model=model):
            return replace(panes, strategy=strategy, strategy_model=model)
        case ExampleReady(index=i, component=c, markdown=markdown, model=model):
            return _with_example(panes, Example(i + 1, c.name, model, markdown=markdown))
        case ExampleFailed(index=i, component=c, reason=reason, model=model):
            return _with_example(panes, Example(i + 1, c.name, model, reason=reason))
        case ReviewReady(review=review, model=model):
            return replace(panes, review=review, review_model=model)
        case ReviewFailed(reason=reason, model=model):
            return replace(panes, review_problem=reason, review_model=model)
        case RunFinished() | RunFailed():
            return replace(panes, end=event)
        case _:
            return panes


def _with_example(panes: Panes, example: Example) -> Panes:
    others = tuple(e for e in panes.examples if e.number != example.number)
    return replace(panes, examples=tuple(sorted((*others, example), key=lambda e: e.number)))


def state(panes: Panes, status: str) -> tuple[str, str]:
    """(`key`, words) of where the run is: the thread's states, for a person."""
    end = panes.end
    if isinstance(end, RunFailed):
        if end.stopped_by:
            return "stopped", "Stopped"
        if end.interrupted:
            return "interrupted", "Interrupted: " + end.reason
        return "failed", "Failed: " + end.reason
    if isinstance(end, RunFinished) or status == "finished":
        return "done", "Done"
    if status in ("failed", "interrupted"):
        return status, status.capitalize()
    if status == "refused":
        return "failed", "Not started: over budget"
    strategy_model, examples_model, review_model = panes.models
    if panes.strategy is None:
        return "planning", f"Planning with {model_label(strategy_model or 'Opus')}…"
    done = len(panes.examples)
    if done < panes.total:
        label = model_label(examples_model or "Haiku")
        return "illustrating", f"Illustrating {done} of {panes.total} with {label}…"
    return "reviewing", f"Reviewing with {model_label(review_model or 'Sonnet')}…"


# HTML -------------------------------------------------------------------------------------


def panes_html(page: RunPage, *, slack_link: str | None, store_questions: bool = True) -> str:
    """Everything inside the page's `<main>`: head, three panes, bill, follow-ups."""
    main = page.main
    panes = fold(main)
    key, words = state(panes, main.run.status)
    question = main.run.question
    heading = render_inline(panes.strategy.title) if panes.strategy else "A run"
    parts = [
        f'<header class="run-head"><h1 id="title">{heading}</h1>',
        f'<p class="state state-{key}" role="status" data-state="{key}">{escape(words)}</p>',
    ]
    if question:
        parts.append(f'<blockquote class="question">{render(question)}</blockquote>')
    if slack_link:
        parts.append(
            f'<p><a class="to-slack" href="{escape(slack_link)}">Open the thread in Slack</a></p>'
        )
    parts.append("</header>")
    if not panes.kept and not store_questions:
        parts.append(
            '<p class="note">This workspace does not keep what runs wrote '
            "(LEDGER_STORE_QUESTIONS=false): read it in the Slack thread. The bill is below.</p>"
        )
    parts.append(_three_panes(panes))
    parts.append(_bill(panes, main))
    if page.followups:
        parts.append('<section class="followups" aria-labelledby="followups-h">')
        parts.append('<h2 id="followups-h">Follow-ups and retries</h2>')
        parts.extend(_followup(n, run) for n, run in enumerate(page.followups, start=1))
        parts.append("</section>")
    return "\n".join(parts)


def _three_panes(panes: Panes) -> str:
    strategy_model, examples_model, review_model = panes.models
    return (
        '<div class="panes">'
        + _pane("strategy", "Strategy", "Planned by", panes.strategy_model or strategy_model,
                _strategy_body(panes))
        + _pane("examples", "Examples", "Illustrated by",
                _examples_model(panes) or examples_model, _examples_body(panes))
        + _pane("review", "Review", "Reviewed by", panes.review_model or review_model,
                _review_body(panes))
        + "</div>"
    )  # fmt: skip


def _examples_model(panes: Panes) -> str:
    return panes.examples[0].model if panes.examples else ""


def _pane(key: str, title: str, by: str, model: str, body: str) -> str:
    who = f"{by} {escape(model_label(model))}" if model else by + " …"
    return (
        f'<section class="pane pane-{key}" id="pane-{key}" aria-labelledby="{key}-h">'
        f'<h2 id="{key}-h">{title} <span class="by">{who}</span></h2>{body}</section>'
    )


def _strategy_body(panes: Panes) -> str:
    strategy = panes.strategy
    if strategy is None:
        return '<p class="pending">Waiting for the plan…</p>'
    items = "".join(
        f'<li><a href="#example-{n}">{render_inline(c.name)}</a>'
        f'<div class="instruction">{render(c.instruction)}</div></li>'
        for n, c in enumerate(strategy.components, start=1)
    )
    return (
        f'<div class="essence">{render(strategy.essence)}</div><ol class="components">{items}</ol>'
    )


def _examples_body(panes: Panes) -> str:
    checks = _checks_by_name(panes.review)
    shown = {e.number: e for e in panes.examples}
    names = [c.name for c in panes.strategy.components] if panes.strategy else []
    if not names:
        return '<p class="pending">The examples start once the plan is ready.</p>'
    cards = []
    for n, name in enumerate(names, start=1):
        example = shown.get(n)
        cards.append(_example_card(n, len(names), name, example, checks.get(name)))
    return "".join(cards)


def _example_card(
    n: int, total: int, name: str, example: Example | None, check: Check | None
) -> str:
    mark = _verdict(check) if check else ""
    head = f'<h3 id="example-{n}-h">{n} of {total} · {render_inline(name)} {mark}</h3>'
    if example is None:
        body, state_ = '<p class="pending">Being illustrated…</p>', "pending"
    elif example.reason is not None:
        body, state_ = f'<p class="failed">Failed: {escape(example.reason)}</p>', "failed"
    else:
        body, state_ = f'<div class="md">{render(example.markdown or "")}</div>', "done"
    return (
        f'<article class="example example-{state_}" id="example-{n}" '
        f'aria-labelledby="example-{n}-h">{head}{body}</article>'
    )


def _verdict(check: Check) -> str:
    mark, words = VERDICTS.get(check.verdict, ("?", "unknown"))
    return (
        f'<span class="verdict verdict-{escape(check.verdict)}" title="{escape(words)}" '
        f'aria-label="review: {escape(words)}">{mark}</span>'
    )


def _checks_by_name(review: Review | None) -> dict[str, Check]:
    return {} if review is None else {c.component: c for c in review.checks}


def _review_body(panes: Panes) -> str:
    review = panes.review
    if review is None:
        if panes.review_problem:
            return f'<p class="failed">No review: {escape(panes.review_problem)}</p>'
        return '<p class="pending">The review comes once every example is in.</p>'
    names = [c.name for c in panes.strategy.components] if panes.strategy else []
    rows = []
    for check in review.checks:
        anchor = names.index(check.component) + 1 if check.component in names else None
        name = render_inline(check.component)
        target = f'<a href="#example-{anchor}">{name}</a>' if anchor else name
        rows.append(
            f"<li>{_verdict(check)} <strong>{target}</strong> — {render_inline(check.reason)}</li>"
        )
    parts = [f'<ul class="checks">{"".join(rows)}</ul>']
    if review.gaps:
        parts.append(
            "<h3>Gaps</h3><ul>"
            + "".join(f"<li>{render_inline(g)}</li>" for g in review.gaps)
            + "</ul>"
        )
    if review.next_steps:
        steps = "".join(f"<li>{render_inline(s)}</li>" for s in review.next_steps)
        parts.append(f"<h3>Next steps</h3><ul>{steps}</ul>")
    return "".join(parts)


def _bill(panes: Panes, run: PageRun) -> str:
    end = panes.end
    if end is None:
        if run.run.status == "running":
            return ""
        total = format_usd(run.run.cost_usd)
        return (
            f'<footer class="bill" aria-label="Cost"><p><strong>Total {total}</strong></p></footer>'
        )
    return f'<footer class="bill" aria-label="Cost">{cost_html(end.cost, end.elapsed_s)}</footer>'


def cost_html(cost: CostSummary, elapsed_s: float) -> str:
    """The thread's cost footer as HTML: per model, total, all on the strategy model, ≈."""
    lines = []
    for entry in cost.by_model:
        usage = entry.usage
        out = approx(f"{usage.output_tokens:,}", usage.estimated)
        tokens = f"{usage.prompt_tokens:,} in / {out} out"
        figure = approx(format_usd(entry.cost_usd), usage.estimated)
        lines.append(
            f"<li><strong>{escape(model_label(entry.model))}</strong> "
            f"<code>{escape(entry.model)}</code> · {format_count(entry.calls, 'call')} · "
            f"{tokens} · {escape(figure)}</li>"
        )
    estimated = includes_estimate(cost.by_model)
    total = "unpriced" if cost.total_usd is None else approx(format_usd(cost.total_usd), estimated)
    totals = [f"<strong>Total {escape(total)}</strong>"]
    if cost.total_usd is not None and cost.all_strategy_model_usd is not None:
        all_on = approx(format_usd(cost.all_strategy_model_usd), estimated)
        totals.append(f"all on {escape(model_label(cost.strategy_model))}: {escape(all_on)}")
        if cost.saving_pct is not None:
            totals.append(escape(format_saving(cost.saving_pct)))
    totals.append(f"⏱ {escape(format_elapsed(elapsed_s))}")
    note = f'<p class="note">{escape(ESTIMATE_NOTE)}</p>' if estimated else ""
    return (
        f'<ul class="models">{"".join(lines)}</ul><p class="totals">{" · ".join(totals)}</p>{note}'
    )


def _followup(n: int, run: PageRun) -> str:
    panes = fold(run)
    key, words = state(panes, run.run.status)
    if panes.strategy is None and panes.examples:
        kind = f"Retry of {render_inline(panes.examples[0].name)}"
    elif run.run.question:
        kind = "Question in the thread"
    else:
        kind = "Follow-up"
    who = escape(run.run.user_id)
    body = [
        f'<article class="followup" id="followup-{n}" aria-labelledby="followup-{n}-h">',
        f'<h3 id="followup-{n}-h">{n}. {kind} <span class="by">asked by {who}</span></h3>',
        f'<p class="state state-{key}">{escape(words)}</p>',
    ]
    if run.run.question and panes.strategy is not None:
        body.append(f'<blockquote class="question">{render(run.run.question)}</blockquote>')
    if panes.strategy is not None:
        body.append(_three_panes(panes))
    else:
        body.extend(_followup_example(e) for e in panes.examples)
    body.append(_bill(panes, run))
    body.append("</article>")
    return "".join(body)


def _followup_example(example: Example) -> str:
    by = f'<p class="by">Illustrated by {escape(model_label(example.model))}</p>'
    if example.reason is not None:
        return f'{by}<p class="failed">Failed again: {escape(example.reason)}</p>'
    return f'{by}<div class="md">{render(example.markdown or "")}</div>'
