"""A run's progress message: one task per model step, as stream chunks or as Block Kit.

The progress message is a reply in the run's thread that lists the run's steps ("Opus:
strategy", "Haiku: example 2 of 4 — Auth", "Sonnet: review"), each pending, in progress,
complete with its model and cost, or in error with why (or who stopped the run). Slack shows
it natively from `chat.startStream` chunks (`plan_update` for the title, one `task_update` per
step); where streaming is refused or the stream has expired, the same progress is shown as
an ordinary message (`progress_message`). When the run ends a plain summary closes it.

Every model or user string is made inert here. Task titles and details are untrusted text in
a field whose parsing Slack does not document, so they go through `plain_label` (no entity
encoding, control sequences and broadcast words broken by a word joiner) and are clipped to
`FIELD_LIMIT` bytes; the Block Kit form escapes as every mrkdwn message does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from blocks.cost import approx, total_text
from blocks.escape import escape, escape_label, plain_label, user_mention
from blocks.format import format_count, format_elapsed, format_usd, model_label
from blocks.message import OutboundMessage, context, fallback, section
from blocks.split import clip
from blocks.types import CostSummaryView

StepState = Literal["pending", "in_progress", "complete", "error"]
StepRole = Literal["plan", "example", "review"]
Outcome = Literal["done", "nothing", "failed", "stopped", "interrupted"]
FIELD_LIMIT = 256  # plan and task fields in stream chunks (bytes: the stricter reading)
SUMMARY_LIMIT = 2_000
MARKS: dict[StepState, str] = {"pending": "○", "in_progress": "⏳", "complete": "✓", "error": "✗"}


@dataclass(frozen=True, slots=True)
class ProgressStep:
    """One model step of a run and what it has cost so far (the sum of its calls; None once
    an unpriced call is among them)."""

    id: str
    role: StepRole
    model: str
    state: StepState = "pending"
    number: int = 0  # an example's place, 1-based, and how many there are
    of: int = 0
    name: str = ""  # an example's component name (model text)
    calls: int = 0
    cost_usd: Decimal | None = Decimal(0)
    estimated: bool = False
    problem: str = ""  # why it ended in error (raw text: escaped where shown)
    stopped_by: str | None = None  # who stopped the run while this step was open

    @property
    def open(self) -> bool:
        return self.state in ("pending", "in_progress")

    def with_call(self, cost_usd: Decimal | None, *, estimated: bool) -> ProgressStep:
        total = None if cost_usd is None or self.cost_usd is None else self.cost_usd + cost_usd
        return replace(
            self, calls=self.calls + 1, cost_usd=total, estimated=self.estimated or estimated
        )


@dataclass(frozen=True, slots=True)
class ProgressView:
    """The whole progress message: its steps and, once the run has ended, how it ended."""

    steps: tuple[ProgressStep, ...]
    outcome: Outcome | None = None
    cost: CostSummaryView | None = None
    elapsed_s: float = 0.0
    stopped_by: str | None = None
    reason: str = ""  # why a failed run failed (raw text)


def step_title(step: ProgressStep) -> str:
    """`Opus: strategy`, `Haiku: example 2 of 4 — Auth`, `Sonnet: review` (plain, inert)."""
    who = model_label(step.model)
    match step.role:
        case "plan":
            title = f"{who}: strategy"
        case "review":
            title = f"{who}: review"
        case "example":
            title = f"{who}: example {step.number} of {step.of} — {' '.join(step.name.split())}"
    return clip(plain_label(title), FIELD_LIMIT)


def step_cost(step: ProgressStep) -> str:
    """`$0.0012`, `≈$0.0012` when a call was cut off and estimated, `unpriced`; '' before any
    call has returned."""
    if not step.calls:
        return ""
    return approx(format_usd(step.cost_usd), step.estimated)


def step_details(step: ProgressStep) -> str:
    """What a task card says under its title: the model and cost once done, why it failed
    or who stopped it, and nothing while it waits."""
    cost = step_cost(step)
    match step.state:
        case "pending":
            parts = ["waiting"]
        case "in_progress":
            parts = [f"{model_label(step.model)} is working"]
        case "complete":
            parts = [cost, step.model]
        case "error":
            why = (
                f"stopped by {user_mention(step.stopped_by)}"
                if step.stopped_by
                else plain_label(step.problem or "failed")
            )
            parts = [why, cost, step.model if cost else ""]
    return clip(" · ".join(p for p in parts if p), FIELD_LIMIT)


def progress_title(view: ProgressView) -> str:
    """The plan's title: how far the run is, then how it ended (plain)."""
    total = len(view.steps)
    done = sum(not step.open for step in view.steps)
    spent = total_text(view.cost) if view.cost is not None else ""
    elapsed = format_elapsed(view.elapsed_s)
    match view.outcome:
        case None:
            title = _working_title(view.steps) or f"{done} of {format_count(total, 'step')} done"
        case "done":
            title = f"Done in {elapsed} · {spent}"
        case "nothing":
            title = f"No example could be written · {spent} spent in {elapsed}"
        case "stopped":
            title = f"Stopped · {spent} spent in {elapsed}"
        case "interrupted":
            title = f"Interrupted by a restart · {spent} spent in {elapsed}"
        case "failed":
            title = f"Failed · {spent} spent in {elapsed}"
    return clip(plain_label(title), FIELD_LIMIT)


def _working_title(steps: tuple[ProgressStep, ...]) -> str:
    """What is being worked on: `Haiku is writing 2 of 4 examples…`; '' between steps."""
    working = [step for step in steps if step.state == "in_progress"]
    if not working:
        return ""
    who = model_label(working[0].model)
    match working[0].role:
        case "plan":
            return f"{who} is writing the strategy…"
        case "review":
            return f"{who} is reviewing…"
        case "example":
            writing = sum(step.role == "example" for step in working)
            return f"{who} is writing {writing} of {format_count(working[0].of, 'example')}…"


def task_chunk(step: ProgressStep) -> dict[str, Any]:
    """A `task_update` stream chunk for one step."""
    chunk = {"type": "task_update", "id": step.id, "title": step_title(step), "status": step.state}
    details = step_details(step)
    return chunk | {"details": details} if details else chunk


def progress_chunks(view: ProgressView) -> list[dict[str, Any]]:
    """The whole progress as stream chunks: the plan's title, then one task per step."""
    return [{"type": "plan_update", "title": progress_title(view)}] + [
        task_chunk(step) for step in view.steps
    ]


def progress_summary(view: ProgressView) -> str:
    """The closing line of an ended run's progress (Markdown, inert): e.g. `✅ Done in 12.3 s
    · $0.0192: 4 of 4 examples written.`"""
    examples = [s for s in view.steps if s.role == "example"]
    written = sum(s.state == "complete" for s in examples)
    of = f"{written} of {format_count(len(examples), 'example')} written"
    spent = total_text(view.cost) if view.cost is not None else ""
    elapsed = format_elapsed(view.elapsed_s)
    match view.outcome:
        case "done" | None:
            line = f"✅ Done in {elapsed} · {spent}: {of}."
        case "nothing":
            line = f"✗ No example could be written · {spent} spent in {elapsed}."
        case "stopped":
            who = user_mention(view.stopped_by) if view.stopped_by else "someone"
            line = f"■ Stopped by {who} after {elapsed} · {spent} spent; {of}."
        case "interrupted":
            line = f"⚠ Interrupted by a restart after {elapsed} · {spent} spent; {of}."
        case "failed":
            line = f"✗ {plain_label(view.reason)} · {spent} spent in {elapsed}."
    return clip(line, SUMMARY_LIMIT)


def progress_message(view: ProgressView) -> OutboundMessage:
    """The progress as an ordinary message, for where streaming is refused or has expired:
    one line per step, the plan's title under them, and the summary once the run ended."""
    lines = [_step_line(step) for step in view.steps]
    title = escape(progress_title(view))
    blocks = [section("\n".join(lines)), context(title)]
    if view.outcome is not None:
        blocks.append(context(_summary_mrkdwn(view)))
    return OutboundMessage(text=fallback(f"Progress: {title}"), blocks=tuple(blocks))


def _step_line(step: ProgressStep) -> str:
    who = escape(model_label(step.model))
    match step.role:
        case "plan":
            what = f"*{who}*: strategy"
        case "review":
            what = f"*{who}*: review"
        case "example":
            what = f"*{who}*: example {step.number} of {step.of} — {escape_label(step.name)}"
    details = step_details(step)
    # step_details is plain text made inert; in mrkdwn its <, > and & must be entities, but a
    # mention we built must stay a mention.
    if step.stopped_by and step.state == "error":
        mention = user_mention(step.stopped_by)
        details = mention.join(escape(part) for part in details.split(mention))
    else:
        details = escape(details)
    return clip(f"{MARKS[step.state]} {what} · {details}", 600)


def _summary_mrkdwn(view: ProgressView) -> str:
    if view.outcome == "stopped" and view.stopped_by:
        mention = user_mention(view.stopped_by)
        return mention.join(escape(part) for part in progress_summary(view).split(mention))
    return escape(progress_summary(view))
