"""Follow-ups in a run's thread: the answers, the redone or added examples, and the new total.

A follow-up reply says who asked and what (a short quote), carries the answer, and closes with
which model wrote it and what it cost; when older thread messages had to be left out of the
model's context, it says so. `followups_total_block` is the line added to the run's footer
("Total $0.0241 + 2 follow-ups $0.0032 = $0.0273"); its `block_id` lets the next follow-up
replace it rather than add another. Model and user text is escaped here like everywhere in
`blocks/`.
"""

from __future__ import annotations

from decimal import Decimal

from blocks.escape import escape, escape_label, user_mention
from blocks.format import format_count, format_usd, model_label
from blocks.message import (
    SECTION_LIMIT,
    Block,
    OutboundMessage,
    context,
    fallback,
    paginate,
    section,
    sections,
)
from blocks.mrkdwn import markdown_to_mrkdwn
from blocks.split import clip

FOLLOWUPS_BLOCK_ID = "orchestrate-followups"
REQUEST_PREVIEW = 200
NAME_LIMIT = 200


def followup_answer_messages(
    *, asker_id: str, request: str, markdown: str, model: str, cost_usd: Decimal | None,
    omitted: int = 0,
) -> list[OutboundMessage]:  # fmt: skip
    """The review model's answer to a follow-up: the quoted request, the answer, attribution."""
    heading = f"↪ {user_mention(asker_id)} asked: {_quote(request)}"
    return _reply(
        heading=heading,
        markdown=markdown,
        by=f"Answered by {escape(model_label(model))} · `{escape(model)}` · {format_usd(cost_usd)}",
        omitted=omitted,
        text=f"Follow-up answer for {user_mention(asker_id)} by {escape(model_label(model))}",
    )


def followup_example_messages(
    *, asker_id: str, request: str, number: int | None, name: str, markdown: str, model: str,
    cost_usd: Decimal | None, omitted: int = 0,
) -> list[OutboundMessage]:  # fmt: skip
    """A component redone (`number`, 1-based) or added (None), threaded like a run's example."""
    label = clip(escape_label(name), NAME_LIMIT)
    what = f"Component {number}, redone" if number is not None else "Added component"
    heading = f"*{what} · {label}*\n↪ {user_mention(asker_id)} asked: {_quote(request)}"
    return _reply(
        heading=heading,
        markdown=markdown,
        by=(
            f"Illustrated by {escape(model_label(model))} · `{escape(model)}` · "
            f"{format_usd(cost_usd)}"
        ),
        omitted=omitted,
        text=f"{what}: {label} — example by {escape(model_label(model))}",
    )


def followup_failed_message(
    *, asker_id: str, reason: str, model: str, cost_usd: Decimal | None
) -> OutboundMessage:
    """The follow-up could not be answered: why, and what the attempt cost."""
    line = f"✗ The follow-up for {user_mention(asker_id)} could not be answered: {escape(reason)}"
    attribution = f"{escape(model_label(model))} · `{escape(model)}` · {format_usd(cost_usd)}"
    return OutboundMessage(
        text=fallback(line), blocks=(section(clip(line, SECTION_LIMIT)), context(attribution))
    )


def rethink_heading(*, asker_id: str, request: str) -> str:
    """The status line's question for a re-plan started from a follow-up."""
    return f"Rethink for {user_mention(asker_id)}: {_quote(request)}"


def followups_total_block(
    *, run_usd: Decimal, count: int, followups_usd: Decimal, unpriced_calls: int = 0
) -> Block:
    """`*Total $0.0241 + 2 follow-ups $0.0032 = $0.0273*`, with unpriced calls named."""
    total = run_usd + followups_usd
    line = (
        f"*Total {format_usd(run_usd)} + {format_count(count, 'follow-up')} "
        f"{format_usd(followups_usd)} = {format_usd(total)}*"
    )
    if unpriced_calls:
        line += f" · {format_count(unpriced_calls, 'unpriced call')} not included"
    block = context(line)
    block["block_id"] = FOLLOWUPS_BLOCK_ID
    return block


def thread_unreadable_message(*, error: str, bot_handle: str = "@orchestrate") -> OutboundMessage:
    """The thread could not be read (a private channel without the bot, a missing scope)."""
    line = (
        f"I can't read this thread ({escape(error)}), so I can't answer from it. "
        f"Invite me with `/invite {escape(bot_handle)}` to the channel and try again."
    )
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def _quote(request: str) -> str:
    return f"_{clip(escape(' '.join(request.split())), REQUEST_PREVIEW)}_"


def _reply(
    *, heading: str, markdown: str, by: str, omitted: int, text: str
) -> list[OutboundMessage]:
    body = sections(markdown_to_mrkdwn(markdown)) or [section("_(empty answer)_")]
    tail = [context(by)]
    if omitted:
        tail.append(context(_cut_note(omitted)))
    return paginate(
        body,
        title=lambda page, pages: [section(clip(heading, SECTION_LIMIT))] if page == 1 else [],
        tail=tail,
        text=lambda page, pages: text,
    )


def _cut_note(omitted: int) -> str:
    return (
        f"_This thread is long: the model read its first message and the latest ones; "
        f"{format_count(omitted, 'older message')} in between were left out._"
    )
