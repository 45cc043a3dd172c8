"""The question limit: one for every entry point, measured and said the same way.

`/orchestrate`, a mention (a question in a channel or a follow-up in a run's thread), the
message shortcut and a Retry all run models on what was asked, so all of them hold it to
`ORCHESTRATE_MAX_QUESTION_CHARS`. Length is counted in characters after Slack's wire form
is decoded (`bot.slack.threads.decode`: `R&amp;D` is three characters, a mention its name), as
the person typed it. A question over the limit is answered privately with
`blocks.question_too_long_messages` (what was typed, given back so nothing is lost), in at
most `MAX_REPLIES` replies whatever the entry point: a command's `response_url` takes five
posts, and a 40,000-character mention must not become fifteen ephemerals.
"""

from __future__ import annotations

import blocks

MAX_REPLIES = 5  # Slack accepts five posts to one command's response_url

COMMAND = "/orchestrate"  # the slash command, as manifest.yml declares it


def over_limit(question: str, *, max_chars: int) -> bool:
    return len(question) > max_chars


def too_long_replies(question: str, *, max_chars: int) -> list[blocks.OutboundMessage]:
    """What the asker is told: the limit, and their question back, in at most five replies
    (the last one saying how much did not fit)."""
    replies = blocks.question_too_long_messages(
        length=len(question), max_chars=max_chars, question=question
    )
    if len(replies) <= MAX_REPLIES:
        return replies
    kept = replies[: MAX_REPLIES - 1]
    return [*kept, blocks.error_message(_not_echoed(question, kept))]


def _not_echoed(question: str, shown: list[blocks.OutboundMessage]) -> str:
    shown_chars = sum(len(b["text"]["text"]) for m in shown for b in m.blocks[1:])
    missing = max(len(blocks.escape(question)) - shown_chars, 0)
    return f"About {missing:,} more characters of your question did not fit in Slack's replies."
