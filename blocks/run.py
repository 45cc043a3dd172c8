"""The messages of one run, in the order a channel sees them.

The thread's first message is `status_message` while Opus plans, then updated in place to
`strategy_message`; under it come one `example_messages` reply per component (or an
`example_failed_message`), and last the review with its cost footer (`review_message`, or
`review_failed_message` / `run_failed_message` when there is none). Status lines for the first
message come from the `*_status` helpers. Every string from a model or a user is escaped or
converted from Markdown here; the only raw mrkdwn is ours (the asker's mention from a validated
id, our emphasis markers).

The question is shown in full (escaped, split across sections if it must be) so an update never
loses it, but only after the strategy and status: the head of the message shows a preview of
`QUESTION_PREVIEW` characters ending in `…`, and the full text follows under *Question* only
when the preview had to cut it or fold its lines.

The first message keeps within one message's text budget like every other: what does not fit
(a long plan, a long question) goes to the thread as `strategy_overflow_messages` /
`status_overflow_messages`, and the first message says so. The split does not depend on the
status line (its room is reserved), so every update of the first message shows the same part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from blocks.controls import feedback_actions, retry_actions, stop_actions
from blocks.cost import cost_footer, total_text
from blocks.ephemeral import command_usage
from blocks.escape import escape, escape_label, user_mention
from blocks.format import format_count, format_elapsed, model_label
from blocks.message import (
    MAX_BLOCKS,
    SECTION_LIMIT,
    Block,
    OutboundMessage,
    context,
    fallback,
    fit_top,
    header,
    paginate,
    section,
    sections,
)
from blocks.mrkdwn import markdown_to_mrkdwn
from blocks.split import clip
from blocks.types import (
    CheckView,
    ComponentView,
    CostSummaryView,
    ReviewView,
    StrategyView,
    Verdict,
)

QUESTION_PREVIEW = 300
STATUS_LIMIT = 300
"""Room kept for the status line of the first message, whatever status it shows."""
MAX_LOADING_MESSAGES = 10  # Slack's limit for assistant.threads.setStatus
NAME_LIMIT = 200
"""A component name is a label: a runaway one must not push a title section over its limit."""
VERDICT_MARKS: dict[Verdict, str] = {"ok": "✓", "warning": "⚠", "problem": "✗"}


@dataclass(frozen=True, slots=True)
class ThreadStatus:
    """What the thread's loading indicator says, and the lines Slack rotates under it."""

    status: str
    loading_messages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.loading_messages) > MAX_LOADING_MESSAGES:
            raise ValueError(f"at most {MAX_LOADING_MESSAGES} loading messages")


# Status lines for the thread's first message -------------------------------------------------


def planning_status(model: str) -> str:
    return f"⏳ {model_label(model)} is planning…"


def drafting_status(model: str) -> str:
    return f"✍ {model_label(model)} is writing the strategy…"


def illustrating_status(model: str, count: int) -> str:
    return f"⏳ {model_label(model)} is writing {format_count(count, 'example')}…"


def reviewing_status(model: str) -> str:
    return f"⏳ {model_label(model)} is reviewing…"


def done_status(cost: CostSummaryView, elapsed_s: float) -> str:
    """`✅ Done in 12.3 s · $0.0192` (escaped: an unpriced total names model ids)."""
    return f"✅ Done in {format_elapsed(elapsed_s)} · {total_text(cost)}"


def nothing_delivered_status(
    failed_components: Sequence[str], cost: CostSummaryView, elapsed_s: float
) -> str:
    """The run ended without a single example: never "Done". Says which parts failed and
    what was spent all the same, e.g. `✗ No example could be written (2 of 2 failed: Auth,
    Feed) · $0.0120 spent in 9.1 s`."""
    count = len(failed_components)
    names = clip(", ".join(" ".join(name.split()) for name in failed_components), NAME_LIMIT)
    return (
        f"✗ No example could be written ({count} of {count} failed: {names}) · "
        f"{total_text(cost)} spent in {format_elapsed(elapsed_s)}"
    )


def failed_status(reason: str) -> str:
    return f"✗ Stopped: {reason}"


def interrupted_status() -> str:
    return "⚠ Interrupted by a restart"


def paused_status() -> str:
    """A run suspended by a shutdown: it goes on where it was once the bot is back."""
    return "⏸ Paused while the bot restarts: this run goes on where it was once it is back"


# The thread's loading indicator (assistant.threads.setStatus) -------------------------------
# Plain text, not mrkdwn; Slack rotates the loading messages (at most 10) while it shows them.


def thread_planning(model: str) -> ThreadStatus:
    who = model_label(model)
    return ThreadStatus(
        f"{who} is planning…",
        (f"{who} is planning…", f"{who} is weighing approaches…", f"{who} is naming components…"),
    )


def thread_illustrating(model: str, *, remaining: int, total: int) -> ThreadStatus:
    who = model_label(model)
    line = f"{who} is writing {remaining} of {format_count(total, 'example')}…"
    return ThreadStatus(line, (line, f"{who} is writing code for each component…"))


def thread_reviewing(model: str) -> ThreadStatus:
    who = model_label(model)
    return ThreadStatus(
        f"{who} is reviewing…",
        (
            f"{who} is reviewing…",
            f"{who} is checking each example against the strategy…",
            "Adding up the cost…",
        ),
    )


# The thread's first message ------------------------------------------------------------------


def status_message(
    *,
    asker_id: str,
    question: str,
    status: str,
    stop_run_id: str | None = None,
    web_link: str | None = None,
) -> OutboundMessage:
    """Who asked, the question and a status line ("⏳ Opus is planning…"); with
    `stop_run_id`, a Stop button under the status while the run works; with `web_link`, an
    "Open in browser" link to the run's web page."""
    kept, _ = _status_parts(asker_id, question)
    return OutboundMessage(
        text=fallback(f"{user_mention(asker_id)} asked: {_preview(question)} — {escape(status)}"),
        blocks=_with_status(kept, status, stop_run_id, web_link),
    )


def status_overflow_messages(*, asker_id: str, question: str) -> list[OutboundMessage]:
    """The rest of a question too long for the first message, as thread replies ([] if none)."""
    _, rest = _status_parts(asker_id, question)
    return _continuations(rest, "Question")


def strategy_message(
    *,
    asker_id: str,
    question: str,
    strategy: StrategyView,
    model: str,
    status: str,
    stop_run_id: str | None = None,
    web_link: str | None = None,
) -> OutboundMessage:
    """The first message once the plan is in: title, essence, components, attribution, status
    (and a Stop button while the run works, with `stop_run_id`; the "Open in browser" link
    with `web_link`)."""
    kept, _ = _strategy_parts(asker_id, question, strategy, model)
    text = f"{escape(strategy.title)} — strategy for {user_mention(asker_id)} · {escape(status)}"
    blocks = _with_status(kept, status, stop_run_id, web_link)
    return OutboundMessage(text=fallback(text), blocks=blocks)


def strategy_overflow_messages(
    *, asker_id: str, question: str, strategy: StrategyView, model: str
) -> list[OutboundMessage]:
    """The part of the strategy (and question) the first message had no room for ([] if none)."""
    _, rest = _strategy_parts(asker_id, question, strategy, model)
    return _continuations(rest, "Strategy")


def _status_parts(asker_id: str, question: str) -> tuple[tuple[Block, ...], list[Block]]:
    head = [_asked(asker_id, question), _status_placeholder()]
    return fit_top(head, _full_question(question), [], note=_continued_below())


def _strategy_parts(
    asker_id: str, question: str, strategy: StrategyView, model: str
) -> tuple[tuple[Block, ...], list[Block]]:
    head = [header(strategy.title), _asked(asker_id, question)]
    body = [
        *sections(markdown_to_mrkdwn(strategy.essence)),
        *[
            block
            for number, component in enumerate(strategy.components, start=1)
            for block in _component(number, component)
        ],
    ]
    tail = [
        context(f"*Strategy · {escape(model_label(model))}* · `{escape(model)}`"),
        _status_placeholder(),
    ]
    kept, rest = fit_top(head, [*body, *_full_question(question)], tail, note=_continued_below())
    return kept, rest


def _status_placeholder() -> Block:
    # As big as any status line may be, so the split never depends on which one is shown.
    return context("s" * STATUS_LIMIT)


def _with_status(
    blocks: tuple[Block, ...],
    status: str,
    stop_run_id: str | None = None,
    web_link: str | None = None,
) -> tuple[Block, ...]:
    """The status line in its place, then the web page's link and the Stop button under it
    when asked for (each when the message has a block to spare: only a runaway plan fills
    all 50)."""
    line = context(clip(escape(status), STATUS_LIMIT))
    extra: list[Block] = []
    if web_link and len(blocks) < MAX_BLOCKS:
        extra.append(web_link_line(web_link))
    if stop_run_id and len(blocks) + len(extra) < MAX_BLOCKS:
        extra.append(stop_actions(stop_run_id))
    shown: list[Block] = []
    for block in blocks:
        shown += [line, *extra] if block == _status_placeholder() else [block]
    return tuple(shown)


def web_link_line(url: str) -> Block:
    """`🌐 Open in browser`: the run's web page. `url` is the app's own address (a setting)
    and a run id, never user text; the characters that would end a Slack link are refused."""
    if any(c in url for c in "<>|"):
        raise ValueError(f"not a link Slack can carry: {url!r}")
    return context(f"🌐 <{url}|Open in browser> · strategy, examples and review side by side")


def _continued_below() -> Block:
    return context("_Continued in the thread ↓_")


def _continuations(rest: list[Block], what: str) -> list[OutboundMessage]:
    if not rest:
        return []
    return paginate(
        rest,
        title=lambda page, pages: [section(f"*{what}* (continued)")],
        tail=[],
        text=lambda page, pages: f"{what} (continued)",
    )


def _asked(asker_id: str, question: str) -> Block:
    return section(f"{user_mention(asker_id)} asked:\n{_quote(_preview(question))}")


def _preview(question: str) -> str:
    return clip(escape(" ".join(question.split())), QUESTION_PREVIEW)


def _full_question(question: str) -> list[Block]:
    full = escape(question.strip())
    if _preview(question) == full:
        return []  # the preview already shows every character, line breaks included
    return sections(f"*Question*\n{_quote(full)}")


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.split("\n"))


def _component(number: int, component: ComponentView) -> list[Block]:
    return sections(
        f"*{number}. {_name(component.name)}*\n{markdown_to_mrkdwn(component.instruction)}"
    )


# Thread replies ------------------------------------------------------------------------------


def _name(text: str) -> str:
    return clip(escape_label(text), NAME_LIMIT)


def _check_position(index: int, total: int) -> str:
    if not 1 <= index <= total:
        raise ValueError(f"index is 1-based and within total: got {index}/{total}")
    return f"{index}/{total}"


def example_messages(
    *, index: int, total: int, component: ComponentView, markdown: str, model: str
) -> list[OutboundMessage]:
    """One reply per component (several when long, marked "(continued 2/3)"); `index` is 1-based.

    The converted Markdown is split losslessly into sections, sections into messages; the
    attribution closes the last message.
    """
    position = _check_position(index, total)
    name = _name(component.name)
    body = sections(markdown_to_mrkdwn(markdown)) or [section("_(empty example)_")]
    attribution = context(f"Illustrated by {escape(model_label(model))} · `{escape(model)}`")

    def title(page: int, pages: int) -> list[Block]:
        return [section(f"*{position} · {name}*{_continued(page, pages)}")]

    def text(page: int, pages: int) -> str:
        by = escape(model_label(model))
        return f"{position} · {name} — example by {by}{_continued(page, pages)}"

    return paginate(body, title=title, tail=[attribution], text=text)


def _continued(page: int, pages: int) -> str:
    return f" (continued {page}/{pages})" if page > 1 else ""


def example_failed_message(
    *,
    index: int,
    total: int,
    component: ComponentView,
    reason: str,
    model: str,
    retry_run_id: str | None = None,
) -> OutboundMessage:
    """`✗ *2/4 · name* — could not be illustrated: reason`, attributed to the model that failed;
    with `retry_run_id`, a Retry button that re-runs this one component."""
    position = _check_position(index, total)
    name = _name(component.name)
    line = f"✗ *{position} · {name}* — could not be illustrated: {escape(reason)}"
    retry = [retry_actions(retry_run_id, index - 1)] if retry_run_id else []
    return OutboundMessage(
        text=fallback(line),
        blocks=(
            section(clip(line, SECTION_LIMIT)),
            context(f"{escape(model_label(model))} · `{escape(model)}`"),
            *retry,
        ),
    )


def undelivered_message(
    *, what: str, error: str, lost: Sequence[OutboundMessage]
) -> OutboundMessage:
    """Slack refused part of the thread even cut smaller: say what is missing, how much, and
    how it began, so a reader knows a part is gone rather than never written."""
    texts = [t for message in lost for t in _mrkdwn_texts(message.blocks)]
    size = sum(len(t) for t in texts)
    start = clip(" ".join(" ".join(texts).split()), QUESTION_PREVIEW)
    line = (
        f"⚠ Slack refused {escape(what)} (`{escape(error)}`), even cut into smaller messages: "
        f"{format_count(size, 'character')} of it are missing from this thread."
    )
    return OutboundMessage(
        text=fallback(line),
        blocks=(section(line), *([section(f"It began:\n{_quote(start)}")] if start else [])),
    )


def _mrkdwn_texts(node: object) -> list[str]:
    if isinstance(node, list | tuple):
        return [t for item in node for t in _mrkdwn_texts(item)]
    if not isinstance(node, dict):
        return []
    if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
        return [node["text"]]
    return [t for value in node.values() for t in _mrkdwn_texts(value)]


def review_message(
    *,
    review: ReviewView,
    model: str,
    cost: CostSummaryView,
    elapsed_s: float,
    failed_components: Sequence[str] = (),
    feedback_run_id: str | None = None,
) -> list[OutboundMessage]:
    """The review (✓/⚠/✗ per component, gaps, next steps), its attribution and the cost footer;
    with `feedback_run_id`, 👍/👎 feedback buttons close it."""
    body = [
        *sections("\n".join(_check_line(check) for check in review.checks)),
        *_not_illustrated(failed_components),
        *_listed("Gaps", review.gaps, numbered=False),
        *_listed("Next steps", review.next_steps, numbered=True),
    ] or [section("_The review found nothing to report._")]
    tail = [
        context(f"Reviewed by {escape(model_label(model))} · `{escape(model)}`"),
        *cost_footer(cost, elapsed_s),
        *([feedback_actions(feedback_run_id)] if feedback_run_id else []),
    ]

    def title(page: int, pages: int) -> list[Block]:
        return [section(f"*Review*{_continued(page, pages)}")]

    def text(page: int, pages: int) -> str:
        return (
            f"Review by {escape(model_label(model))} · {total_text(cost)}{_continued(page, pages)}"
        )

    return paginate(body, title=title, tail=tail, text=text)


def _check_line(check: CheckView) -> str:
    mark = VERDICT_MARKS.get(check.verdict, "?")
    return f"{mark} *{_name(check.component)}* — {markdown_to_mrkdwn(check.reason)}"


def _not_illustrated(names: Sequence[str]) -> list[Block]:
    if not names:
        return []
    listed = ", ".join(f"*{_name(name)}*" for name in names)
    return sections(f"✗ No example for {listed}: it could not be illustrated.")


def _listed(title: str, items: Sequence[str], *, numbered: bool) -> list[Block]:
    if not items:
        return []
    lines = [
        f"{f'{n}.' if numbered else '•'} {markdown_to_mrkdwn(item)}"
        for n, item in enumerate(items, start=1)
    ]
    return sections(f"*{title}*\n" + "\n".join(lines))


def review_failed_message(
    *, reason: str, cost: CostSummaryView, elapsed_s: float, model: str | None = None
) -> list[OutboundMessage]:
    """The review could not be written: say why; the cost footer still shows the bill."""
    who = f" by {escape(model_label(model))}" if model else ""
    return _notice(f"⚠ The review could not be written{who}: {escape(reason)}", cost, elapsed_s)


def run_failed_message(
    *, reason: str, cost: CostSummaryView, elapsed_s: float
) -> list[OutboundMessage]:
    """The run stopped (no strategy, or cancelled): the reason, then what was spent."""
    return _notice(f"✗ The run stopped: {escape(reason)}", cost, elapsed_s)


def interrupted_message(
    *, command: str = "/orchestrate", cost: CostSummaryView | None = None, elapsed_s: float = 0.0
) -> OutboundMessage:
    """The run was cut short by a restart; ask again. Shows the bill so far when there is one."""
    line = (
        "⚠ This run was interrupted by a restart before it finished. "
        f"Ask again with {command_usage(command)}."
    )
    footer = cost_footer(cost, elapsed_s) if cost is not None else []
    return OutboundMessage(text=fallback(line), blocks=(section(line), *footer))


def unreachable_message(parts: Sequence[str], *, command: str = "/orchestrate") -> OutboundMessage:
    """Slack could not be reached for part of this thread, even retried for a minute: say
    which, so the thread is not mistaken for a run still going (the calls are in the ledger
    all the same)."""
    listed = ", ".join(escape(part) for part in parts)
    line = (
        f"⚠ Slack could not be reached to post {listed} of this run, even after retrying. "
        "The run's cost is recorded all the same; ask again with "
        f"{command_usage(command)} to see the answer."
    )
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def _notice(line: str, cost: CostSummaryView, elapsed_s: float) -> list[OutboundMessage]:
    return paginate(
        sections(line),
        title=lambda page, pages: [],
        tail=cost_footer(cost, elapsed_s),
        text=lambda page, pages: line,
    )
