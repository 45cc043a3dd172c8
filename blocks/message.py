"""`OutboundMessage` and the few Block Kit primitives every builder is made of.

An `OutboundMessage` is what the Slack edge posts: a plain-text fallback for notifications and
at most 50 blocks; it refuses to exist outside those limits. The primitives take text that is
*already* escaped mrkdwn (callers escape; these only assemble) and keep each block within
Slack's limits: sections are split, headers and context elements clipped. Every mrkdwn object is
`verbatim`, so Slack never auto-links words in text we did not mark up ourselves. `paginate`
spreads a long run of sections over several messages, with a title on each and a tail on the last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from blocks.escape import escape_label
from blocks.split import clip, split_mrkdwn

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_HOME_BLOCKS = 100
MAX_TEXT = 3500
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
HEADER_LIMIT = 150
CONTEXT_LIMIT = 2000
MAX_CONTEXT_ELEMENTS = 10
MESSAGE_BUDGET = 12_000
"""Section characters per message: Slack's own figure for a message's `markdown` blocks, and a
size whose JSON stays far from any payload limit."""

NO_UNFURL: Mapping[str, bool] = MappingProxyType({"unfurl_links": False, "unfurl_media": False})
"""For `chat.postMessage`: a URL in model text must not make Slack fetch it or show a preview."""


@dataclass(frozen=True)
class OutboundMessage:
    """A message ready to post: escaped fallback `text` (≤ 3,500) and ≤ 50 blocks."""

    text: str
    blocks: tuple[Block, ...]

    def __post_init__(self) -> None:
        if len(self.text) > MAX_TEXT:
            raise ValueError(f"fallback text is {len(self.text)} chars, over {MAX_TEXT}")
        if not 0 < len(self.blocks) <= MAX_BLOCKS:
            raise ValueError(f"a message needs 1 to {MAX_BLOCKS} blocks, got {len(self.blocks)}")

    def post_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `chat.postMessage` (add `channel` and `thread_ts`)."""
        return {**self.update_kwargs(), **NO_UNFURL}

    def update_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `chat.update` / `chat.postEphemeral` (no unfurl flags there)."""
        return {"text": self.text, "blocks": list(self.blocks)}


def mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def section(text: str) -> Block:
    """One section; `text` must already fit (use `sections` for text of any length)."""
    return {"type": "section", "text": mrkdwn(text)}


def sections(text: str) -> list[Block]:
    """All of `text` in sections, split losslessly; blank chunks dropped (Slack refuses them)."""
    return [section(chunk) for chunk in split_mrkdwn(text, SECTION_LIMIT) if chunk.strip()]


def fields_section(fields: Sequence[str]) -> Block:
    """A two-column section; at most 10 fields of at most 2,000 chars each."""
    return {
        "type": "section",
        "fields": [mrkdwn(clip(field, FIELD_LIMIT)) for field in fields[:MAX_FIELDS]],
    }


def header(raw: str) -> Block:
    """A header from *unescaped* text: escaped here, then clipped to 150 chars."""
    text = clip(escape_label(raw), HEADER_LIMIT) if raw.strip() else "…"
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def context(*texts: str) -> Block:
    """A context block of up to 10 mrkdwn elements, each clipped (a footer is never the content)."""
    elements = [mrkdwn(clip(text, CONTEXT_LIMIT)) for text in texts[:MAX_CONTEXT_ELEMENTS]]
    return {"type": "context", "elements": elements}


def divider() -> Block:
    return {"type": "divider"}


def fallback(text: str) -> str:
    """Notification text from already-escaped pieces, clipped to Slack's comfortable size."""
    return clip(" ".join(text.split()), MAX_TEXT)


def paginate(
    body: Sequence[Block],
    *,
    title: Callable[[int, int], list[Block]],
    tail: Sequence[Block],
    text: Callable[[int, int], str],
) -> list[OutboundMessage]:
    """Spread `body` over messages: `title(page, pages)` heads each, `tail` ends the last.

    A page takes blocks while they fit both the 50-block limit (leaving room for title and tail)
    and `MESSAGE_BUDGET` characters of text; a block never moves between pages out of order.
    """
    room = MAX_BLOCKS - len(title(1, 1)) - len(tail)
    pages: list[list[Block]] = [[]]
    used = 0
    for block in body:
        size = _size(block)
        if pages[-1] and (len(pages[-1]) >= room or used + size > MESSAGE_BUDGET):
            pages.append([])
            used = 0
        pages[-1].append(block)
        used += size
    count = len(pages)
    return [
        OutboundMessage(
            text=fallback(text(number, count)),
            blocks=(*title(number, count), *page, *(tail if number == count else ())),
        )
        for number, page in enumerate(pages, start=1)
    ]


def _size(block: Block) -> int:
    text = block.get("text")
    return len(text["text"]) if isinstance(text, dict) else 0
