"""Cutting escaped mrkdwn to Slack's size limits without losing or corrupting a character.

Every size here is `slack_length`: UTF-8 bytes of the text as sent, entities included. Slack's
reference says "characters", but it has refused non-ASCII text under its character count;
bytes are never fewer than characters, so text measured this way fits however Slack counts.

`split_mrkdwn` cuts long text into chunks of at most `limit` bytes, preferring a paragraph
break, then a line break, then a space, in the second half of each window so chunks stay full.
It never cuts inside an entity (`&amp;`), inside a ``` marker or, when it can help it, inside a
`<…>` link or mention. A cut that falls inside a code fence closes the fence at the end of the
chunk and reopens it at the start of the next, so every chunk renders as code where the original
did; `split_chunks` says exactly which markers were added, so joining the bodies gives the input
back. `clip` shortens text for bounded places (headers, notifications) under the same rules.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

FENCE = "```"
REOPEN = FENCE + "\n"
_CLOSE_MAX = "\n" + FENCE
MIN_LIMIT = 32
"""Leaves every window wider than the longest span we refuse to cut (an entity of ≤ 10 chars)."""

_FENCE_RE = re.compile(re.escape(FENCE))
_ENTITY_RE = re.compile(r"&#?[A-Za-z0-9]{1,8};")
_ANGLE_RE = re.compile(r"<[^<>\n]{1,300}>")


def slack_length(text: str) -> int:
    """The size Slack's limits are checked against here: UTF-8 bytes."""
    return len(text.encode("utf-8"))


def _byte_offsets(text: str) -> list[int]:
    """offsets[i] = slack_length(text[:i]), for i in 0..len(text)."""
    if text.isascii():
        return list(range(len(text) + 1))
    return [0, *accumulate(map(_utf8_width, text))]


def _utf8_width(char: str) -> int:
    code = ord(char)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def _end_within(offsets: list[int], start: int, room: int) -> int:
    """The furthest index `end` with text[start:end] at most `room` bytes long."""
    return bisect_right(offsets, offsets[start] + room) - 1


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of split text: `prefix` and `suffix` are fence markers the split added."""

    prefix: str
    body: str
    suffix: str

    @property
    def text(self) -> str:
        return self.prefix + self.body + self.suffix


@dataclass(frozen=True, slots=True)
class _Guards:
    """Per cut position (0..len): may we cut there, and is a code fence open there?"""

    hard: list[bool]
    soft: list[bool]
    fence_open: list[bool]


def _interiors(text: str, pattern: re.Pattern[str]) -> list[bool]:
    """True at every position strictly inside a match: cutting there would split the match."""
    inside = [False] * (len(text) + 1)
    for match in pattern.finditer(text):
        for pos in range(match.start() + 1, match.end()):
            inside[pos] = True
    return inside


def _fence_states(text: str) -> list[bool]:
    """Whether a fence is open at each position; every ``` marker toggles, as in Slack."""
    states = [False] * (len(text) + 1)
    toggles = {match.end() for match in _FENCE_RE.finditer(text)}
    open_ = False
    for pos in range(len(text) + 1):
        if pos in toggles:
            open_ = not open_
        states[pos] = open_
    return states


def _guards(text: str) -> _Guards:
    fences = _interiors(text, _FENCE_RE)
    entities = _interiors(text, _ENTITY_RE)
    hard = [not (f or e) for f, e in zip(fences, entities, strict=True)]
    soft = [not a for a in _interiors(text, _ANGLE_RE)]
    return _Guards(hard=hard, soft=soft, fence_open=_fence_states(text))


def _last(text: str, guards: _Guards, lo: int, hi: int, boundary: str) -> int | None:
    """The last position in [lo, hi] right after `boundary` where a cut is fully safe."""
    for pos in range(hi, lo - 1, -1):
        if guards.hard[pos] and guards.soft[pos] and text.endswith(boundary, 0, pos):
            return pos
    return None


def _last_allowed(guards: _Guards, lo: int, hi: int, *, soft: bool) -> int | None:
    for pos in range(hi, lo - 1, -1):
        if guards.hard[pos] and (guards.soft[pos] or not soft):
            return pos
    return None


def _choose_cut(text: str, guards: _Guards, start: int, end: int) -> int:
    """Best cut in (start, end]: a paragraph, line or word break late in the window, else any.

    A cut inside a fence must leave room for the closing marker; elsewhere it may use it all.
    """
    best = _best_cut(text, guards, start, end)
    if guards.fence_open[best]:
        best = _best_cut(text, guards, start, end - len(_CLOSE_MAX))
    return best


def _best_cut(text: str, guards: _Guards, start: int, hi: int) -> int:
    lo = max(start + 1, start + (hi - start) // 2)
    for boundary in ("\n\n", "\n", " "):
        cut = _last(text, guards, lo, hi, boundary)
        if cut is not None:
            return cut
    for soft in (True, False):
        cut = _last_allowed(guards, start + 1, hi, soft=soft)
        if cut is not None:
            return cut
    return hi  # unreachable while limit >= MIN_LIMIT; never loop forever if it is not


def split_chunks(text: str, limit: int = 3000) -> list[Chunk]:
    """Split `text` into chunks whose `.text` is at most `limit` bytes; bodies join to `text`."""
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT}, got {limit}")
    guards = _guards(text)
    offsets = _byte_offsets(text)
    chunks: list[Chunk] = []
    start, reopened = 0, False
    while True:
        prefix = REOPEN if reopened else ""
        if len(prefix) + offsets[-1] - offsets[start] <= limit:
            chunks.append(Chunk(prefix, text[start:], ""))
            return chunks
        end = _end_within(offsets, start, limit - len(prefix))
        cut = _choose_cut(text, guards, start, end)
        body = text[start:cut]
        reopened = guards.fence_open[cut]
        chunks.append(Chunk(prefix, body, _closing(body) if reopened else ""))
        start = cut


def _closing(body: str) -> str:
    # A fence closes on its own line; do not add a blank line when the body already ends one.
    return FENCE if body.endswith("\n") else "\n" + FENCE


def split_mrkdwn(text: str, limit: int = 3000) -> list[str]:
    """Split escaped mrkdwn into chunks of at most `limit` bytes, each fence-balanced."""
    return [chunk.text for chunk in split_chunks(text, limit)]


def clip(text: str, limit: int, *, ellipsis: str = "…") -> str:
    """`text` if it fits in `limit` bytes, else its start cut safely (word break if near) + `…`."""
    if slack_length(text) <= limit:
        return text
    room = _end_within(_byte_offsets(text), 0, limit - slack_length(ellipsis))
    window = text[: room + 1]
    guards = _guards(text[: room + 16])  # see entities that straddle the end of the window
    lo = max(1, room * 4 // 5)
    cut = _last(window, guards, lo, room, " ") or _last_allowed(guards, 1, room, soft=True)
    return text[: cut or room].rstrip() + ellipsis
