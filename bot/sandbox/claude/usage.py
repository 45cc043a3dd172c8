"""Token counts and prompt caching for the Claude sandbox.

A prompt is a list of `Segment`s in the API's cache order: the output schema, tools,
system blocks, then message content blocks. Each segment costs ceil(chars / 4) tokens, so
counts are deterministic and `count_tokens` agrees with `messages`. A `cache_control` on
a segment (or the top-level one, which marks the last block) is a breakpoint; the
`PromptCache` then reports what a request reads and writes, like the API: a prefix below
the model's minimum is silently not cached; a write becomes readable only once the
writing request has produced its first token (so parallel requests fired together each
write); a read refreshes the entry's TTL.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.sandbox.claude.models import cache_minimum

_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True, slots=True)
class Segment:
    """One cacheable unit of a prompt; `ttl` is set when it carries `cache_control`."""

    tokens: int
    fingerprint: str
    ttl: str | None = None


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """The input side of `usage`: uncached input plus cache reads and writes."""

    input_tokens: int
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h


def count_text(text: str) -> int:
    return math.ceil(len(text) / 4)


def segments(body: Mapping[str, Any]) -> list[Segment]:
    """The prompt in cache order, with the top-level `cache_control` applied to the end."""
    parts = [*_schema_segments(body), *_tool_segments(body), *_system_segments(body)]
    parts += _message_segments(body)
    top = body.get("cache_control")
    if isinstance(top, Mapping) and parts:
        parts[-1] = Segment(parts[-1].tokens, parts[-1].fingerprint, _ttl(top))
    return parts


def input_tokens(body: Mapping[str, Any]) -> int:
    return max(1, sum(s.tokens for s in segments(body)))


def _segment(value: object, *, text: str | None = None) -> Segment:
    marker = value.get("cache_control") if isinstance(value, Mapping) else None
    bare = (
        {k: v for k, v in value.items() if k != "cache_control"}
        if isinstance(value, Mapping)
        else value
    )
    fingerprint = json.dumps(bare, sort_keys=True, ensure_ascii=False, default=str)
    tokens = count_text(text if text is not None else fingerprint)
    return Segment(tokens, fingerprint, _ttl(marker) if isinstance(marker, Mapping) else None)


def _ttl(marker: Mapping[str, Any]) -> str:
    return "1h" if marker.get("ttl") == "1h" else "5m"


def _schema_segments(body: Mapping[str, Any]) -> list[Segment]:
    output = body.get("output_config")
    fmt = output.get("format") if isinstance(output, Mapping) else None
    return [_segment({"output_format": fmt})] if isinstance(fmt, Mapping) else []


def _tool_segments(body: Mapping[str, Any]) -> list[Segment]:
    tools = body.get("tools")
    return [_segment(t) for t in tools] if isinstance(tools, list) else []


def _system_segments(body: Mapping[str, Any]) -> list[Segment]:
    system = body.get("system")
    if isinstance(system, str):
        return [_segment({"type": "text", "text": system}, text=system)] if system else []
    return [_block_segment(b) for b in system] if isinstance(system, list) else []


def _message_segments(body: Mapping[str, Any]) -> list[Segment]:
    found: list[Segment] = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        role = message.get("role") if isinstance(message, Mapping) else None
        blocks: Sequence[Any] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else content or ()
        )
        # The role is part of what a cached prefix must match, so it joins the fingerprint.
        found += [_segment({"role": role})] + [_block_segment(b) for b in blocks]
    return found


def _block_segment(block: object) -> Segment:
    if isinstance(block, Mapping) and block.get("type") == "text":
        return _segment(block, text=str(block.get("text", "")))
    return _segment(block)


@dataclass(slots=True)
class _Entry:
    ready_at: float
    expires_at: float
    ttl_s: float


class PromptCache:
    """Written prefixes per model, keyed by a hash of everything up to a breakpoint."""

    def __init__(self, minimums: Mapping[str, int] | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        # Per model id, instead of `cache_minimum`'s stricter default (docs/sandbox.md).
        self.minimums: dict[str, int] = dict(minimums or {})

    def clear(self) -> None:
        self._entries.clear()

    def account(
        self, model: str, parts: Sequence[Segment], *, now: float, first_token_at: float
    ) -> CacheUsage:
        """Read the longest ready cached prefix, write the last breakpoint's, count the rest."""
        total = sum(p.tokens for p in parts)
        marks = self._breakpoints(model, parts)
        if not marks:
            return CacheUsage(input_tokens=total)
        read_at, read = self._read(marks, now=now)
        _, last_tokens, last_ttl = marks[-1]
        written = 0
        if last_tokens > read:
            written = last_tokens - read
            for key, _, ttl in marks[read_at + 1 :]:
                self._write(key, ttl, now=now, ready_at=first_token_at)
        five = written if last_ttl == "5m" else 0
        return CacheUsage(total - read - written, read, five, written - five)

    def _breakpoints(self, model: str, parts: Sequence[Segment]) -> list[tuple[str, int, str]]:
        """(key, prefix tokens, ttl) for each marked prefix long enough to cache."""
        running, tokens, marks = hashlib.sha256(model.encode()), 0, []
        for part in parts:
            running.update(part.fingerprint.encode() + b"\x00")
            tokens += part.tokens
            if part.ttl is not None and tokens >= cache_minimum(model, self.minimums):
                marks.append((running.copy().hexdigest(), tokens, part.ttl))
        return marks

    def _read(self, marks: Sequence[tuple[str, int, str]], *, now: float) -> tuple[int, int]:
        for index in range(len(marks) - 1, -1, -1):
            key, tokens, _ = marks[index]
            entry = self._entries.get(key)
            if entry and entry.ready_at <= now < entry.expires_at:
                entry.expires_at = now + entry.ttl_s  # a hit refreshes the lifetime
                return index, tokens
        return -1, 0

    def _write(self, key: str, ttl: str, *, now: float, ready_at: float) -> None:
        current = self._entries.get(key)
        if current and current.expires_at > now:
            ready_at = min(ready_at, current.ready_at)
        ttl_s = _TTL_SECONDS[ttl]
        self._entries[key] = _Entry(ready_at, max(now, ready_at) + ttl_s, ttl_s)


def usage_json(cache: CacheUsage, *, output_tokens: int, thinking_tokens: int) -> dict[str, Any]:
    """The `usage` object exactly as the API spells it."""
    return {
        "input_tokens": cache.input_tokens,
        "cache_creation_input_tokens": cache.cache_write,
        "cache_read_input_tokens": cache.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.cache_write_5m,
            "ephemeral_1h_input_tokens": cache.cache_write_1h,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"thinking_tokens": thinking_tokens},
        "service_tier": "standard",
    }
