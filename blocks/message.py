"""`OutboundMessage` and the few Block Kit primitives every builder is made of.

An `OutboundMessage` is what the Slack edge posts: a plain-text fallback for notifications and
at most 50 blocks carrying at most `MESSAGE_TEXT_BUDGET` of text together; it refuses to exist
outside those limits. Slack refuses a message whose blocks carry too much text in total
(`msg_blocks_too_long`, reported from about 11,300 characters), besides each block's own
limit. Sizes are `slack_length` (UTF-8 bytes as sent), never fewer than Slack's count.

The primitives take text that is *already* escaped mrkdwn (callers escape; these only
assemble) and keep each block within Slack's limits: sections are split, headers and context
elements clipped. Every mrkdwn object is `verbatim`, so Slack never auto-links words in text we
did not mark up ourselves. `paginate` spreads a long run of sections over several messages,
with a title on each and a tail on the last; `fit_top` keeps what fits in one message and
hands back the rest; `resplit` cuts a message Slack refused into smaller ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from blocks.escape import plain_label
from blocks.split import MIN_LIMIT, clip, slack_length, split_mrkdwn

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
MESSAGE_TEXT_BUDGET = 10_000
"""All the text of one message's blocks together (headers, sections, context; the fallback
`text` is not part of it). Slack refused messages at 11,341 characters of summed text; this
leaves room for what its count includes that a sender cannot see (the block containers)."""
RESPLIT_FLOOR = 1_000
"""`resplit` stops halving below this: a refusal of so little text is not about size."""

NO_UNFURL: Mapping[str, bool] = MappingProxyType({"unfurl_links": False, "unfurl_media": False})
"""For `chat.postMessage`: a URL in model text must not make Slack fetch it or show a preview."""


@dataclass(frozen=True)
class OutboundMessage:
    """A message ready to post: escaped fallback `text` (≤ 3,500) and ≤ 50 blocks."""

    text: str
    blocks: tuple[Block, ...]

    def __post_init__(self) -> None:
        if slack_length(self.text) > MAX_TEXT:
            raise ValueError(f"fallback text is {slack_length(self.text)} bytes, over {MAX_TEXT}")
        if not 0 < len(self.blocks) <= MAX_BLOCKS:
            raise ValueError(f"a message needs 1 to {MAX_BLOCKS} blocks, got {len(self.blocks)}")
        size = text_size(self.blocks)
        if size > MESSAGE_TEXT_BUDGET:
            raise ValueError(f"blocks carry {size} bytes of text, over {MESSAGE_TEXT_BUDGET}")

    def post_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `chat.postMessage` (add `channel` and `thread_ts`)."""
        return {**self.update_kwargs(), **NO_UNFURL}

    def update_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `chat.update` / `chat.postEphemeral` (no unfurl flags there)."""
        return {"text": self.text, "blocks": list(self.blocks)}


def text_size(node: Any) -> int:
    """Every string under a `text` key in `node` (blocks, a block, …), summed in bytes: what
    Slack's limit on a message's total text counts."""
    if isinstance(node, list | tuple):
        return sum(text_size(item) for item in node)
    if not isinstance(node, dict):
        return 0
    return sum(
        slack_length(value) if key == "text" and isinstance(value, str) else text_size(value)
        for key, value in node.items()
    )


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
    """A header from *unescaped* text, on one line, clipped to 150 bytes.

    A header is plain_text, which Slack shows exactly as sent: it parses `&`, `<` and `>`
    only in mrkdwn, so `R&D` is sent as `R&D` (escaped, it would read `R&amp;D`); control
    sequences and broadcast words are still made inert (`blocks.escape.plain_label`).
    """
    label = plain_label(raw)
    text = clip(label, HEADER_LIMIT) if label else "…"
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
    budget: int = MESSAGE_TEXT_BUDGET,
) -> list[OutboundMessage]:
    """Spread `body` over messages: `title(page, pages)` heads each, `tail` ends the last.

    A page takes blocks while they fit both the 50-block limit (leaving room for title and tail)
    and `budget` bytes of text, title and tail included; a block never moves between pages out
    of order, and a section too big for a page is split first.
    """
    room = MAX_BLOCKS - len(title(1, 1)) - len(tail)
    title_size = max(text_size(title(1, 1)), text_size(title(2, 99)))
    space = budget - title_size - text_size(tail)
    pages: list[list[Block]] = [[]]
    used = 0
    for piece in (piece for block in body for piece in _fitted(block, space)):
        size = text_size(piece)
        if pages[-1] and (len(pages[-1]) >= room or used + size > space):
            pages.append([])
            used = 0
        pages[-1].append(piece)
        used += size
    count = len(pages)
    return [
        OutboundMessage(
            text=fallback(text(number, count)),
            blocks=(*title(number, count), *page, *(tail if number == count else ())),
        )
        for number, page in enumerate(pages, start=1)
    ]


def fit_top(
    head: Sequence[Block], body: Sequence[Block], tail: Sequence[Block], *, note: Block
) -> tuple[tuple[Block, ...], list[Block]]:
    """One message's blocks: `head`, as much of `body` as fits, `tail`; and the body left over.

    When something is left over, `note` (e.g. "continued in the thread") goes before the tail,
    so the message says where the rest is. Head and tail must fit on their own.
    """
    fixed = [*head, *tail]
    if _fits([*fixed, *body]):
        return (*head, *body, *tail), []
    kept: list[Block] = []
    rest = [piece for block in body for piece in _fitted(block, _space([*fixed, note]))]
    while rest and _fits([*fixed, note, *kept, rest[0]]):
        kept.append(rest.pop(0))
    return (*head, *kept, note, *tail), rest


def resplit(message: OutboundMessage) -> list[OutboundMessage] | None:
    """`message` as two smaller messages, in order, every character kept (or one with a
    shorter fallback when the blocks cannot be cut); None when it is already too small for
    size to be the reason Slack refused it.

    For a refusal about size (`msg_blocks_too_long`, `msg_too_long`, `invalid_blocks` when Slack
    counts differently): sections are cut to at most half the text, the blocks shared out
    between two messages about evenly, and the fallback halved.
    """
    size = text_size(message.blocks)
    if size < RESPLIT_FLOOR and slack_length(message.text) < RESPLIT_FLOOR:
        return None
    half = max(size // 2, MIN_LIMIT * 4)
    pieces = [piece for block in message.blocks for piece in _fitted(block, half, limit=half)]
    shorter = clip(message.text, max(slack_length(message.text) // 2, MIN_LIMIT))
    if len(pieces) < 2:
        return None if shorter == message.text else [OutboundMessage(shorter, tuple(pieces))]
    cut = _halfway(pieces, half)
    return [
        OutboundMessage(text=shorter, blocks=tuple(pieces[:cut])),
        OutboundMessage(text=shorter, blocks=tuple(pieces[cut:])),
    ]


def _halfway(pieces: Sequence[Block], half: int) -> int:
    """Where to cut `pieces` in two: after the last piece that keeps the first part in `half`
    (at least one piece on each side)."""
    used = 0
    for index, piece in enumerate(pieces):
        used += text_size(piece)
        if used > half:
            return min(max(index, 1), len(pieces) - 1)
    return len(pieces) - 1


def shorten_fallback(message: OutboundMessage) -> OutboundMessage | None:
    """`message` with half its fallback `text` (what `msg_too_long` is about; the blocks carry
    the content, so nothing a reader sees is lost); None when the fallback is already short."""
    if slack_length(message.text) < RESPLIT_FLOOR:
        return None
    return OutboundMessage(
        text=clip(message.text, slack_length(message.text) // 2), blocks=message.blocks
    )


def _fits(blocks: Sequence[Block]) -> bool:
    return len(blocks) <= MAX_BLOCKS and text_size(blocks) <= MESSAGE_TEXT_BUDGET


def _space(fixed: Sequence[Block]) -> int:
    return MESSAGE_TEXT_BUDGET - text_size(fixed)


def _fitted(block: Block, space: int, *, limit: int = SECTION_LIMIT) -> list[Block]:
    """`block`, or a section cut into sections of at most min(space, limit) bytes of text."""
    text = block.get("text")
    if block.get("type") != "section" or not isinstance(text, dict) or "fields" in block:
        return [block]
    cap = max(min(space, limit), MIN_LIMIT)
    if slack_length(text["text"]) <= cap:
        return [block]
    return [section(chunk) for chunk in split_mrkdwn(text["text"], cap) if chunk.strip()]
