"""What a stream's `chunks` may hold, as the Slack stand-in checks it.

`chat.startStream`, `chat.appendStream` and `chat.stopStream` take `chunks`: `markdown_text`
(`text`), `plan_update` (`title`), `task_update` (`id`, `title`, `status` one of `pending`,
`in_progress`, `complete`, `error`; optional `details`, `output`, `sources` of
`{type: url, text, url}`) and `blocks` (`blocks`), the shapes slack_sdk's chunk models and
Slack's method reference publish. Anything else is refused with `invalid_arguments` and a
pointer to what is wrong. Where only reports settle a limit, the stricter reading is applied
(docs/sandbox.md): string fields of plan and task chunks at most `FIELD_MAX` bytes, at most
`TASKS_MAX` distinct tasks in one message, no unknown keys, and `markdown_text` not in the same
request as `chunks`.
"""

from __future__ import annotations

from typing import Any

from bot.sandbox.slack.blocks import block_errors, slack_length

TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})
DISPLAY_MODES = frozenset({"timeline", "plan"})
FIELD_MAX = 256
"""Reported as Slack's limit for task and plan fields (vercel/chat#886); a live probe there
saw longer ones accepted. The stand-in refuses past it: the stricter reading."""
TASKS_MAX = 50
"""Task cards in one streamed message: agents page plans at 48-50 cards after failures past
50 (paradigmxyz/centaur#458, #469; openclaw#143882). Unpublished; the stricter reading."""

_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # type: (required keys, optional keys), besides "type"
    "markdown_text": (frozenset({"text"}), frozenset()),
    "plan_update": (frozenset({"title"}), frozenset()),
    "task_update": (
        frozenset({"id", "title", "status"}),
        frozenset({"details", "output", "sources"}),
    ),
    "blocks": (frozenset({"blocks"}), frozenset()),
}
_LIMITED = ("id", "title", "details", "output")


def chunk_errors(chunks: Any) -> list[str]:
    """Every way `chunks` breaks Slack's shapes, as `[ERROR] …` lines; [] when it is fine."""
    if not isinstance(chunks, list):
        return ["[ERROR] chunks must be an array [json-pointer:/chunks]"]
    errors: list[str] = []
    for index, chunk in enumerate(chunks):
        errors += _errors(chunk, f"/chunks/{index}")
    return errors


def display_mode_errors(mode: Any) -> list[str]:
    if mode is None or mode in DISPLAY_MODES:
        return []
    return [f"[ERROR] task_display_mode must be one of {sorted(DISPLAY_MODES)}"]


def task_ids(chunks: list[dict[str, Any]]) -> set[str]:
    return {str(c["id"]) for c in chunks if c.get("type") == "task_update"}


def _errors(chunk: Any, pointer: str) -> list[str]:
    if not isinstance(chunk, dict):
        return [f"[ERROR] a chunk must be an object [json-pointer:{pointer}]"]
    kind = chunk.get("type")
    if kind not in _KEYS:
        return [f"[ERROR] unknown chunk type {kind!r} [json-pointer:{pointer}/type]"]
    required, optional = _KEYS[kind]
    errors = [
        f"[ERROR] missing required field: {key} [json-pointer:{pointer}]"
        for key in sorted(required - chunk.keys())
    ]
    errors += [
        f"[ERROR] unknown field: {key} [json-pointer:{pointer}/{key}]"
        for key in sorted(chunk.keys() - required - optional - {"type"})
    ]
    if errors:
        return errors
    match kind:
        case "markdown_text":
            return _strings(chunk, ("text",), pointer, limit=None)
        case "plan_update":
            return _strings(chunk, ("title",), pointer, limit=FIELD_MAX)
        case "task_update":
            return _task_errors(chunk, pointer)
        case _:
            return block_errors(chunk["blocks"], pointer=f"{pointer}/blocks")


def _task_errors(chunk: dict[str, Any], pointer: str) -> list[str]:
    present = [key for key in _LIMITED if key in chunk]
    errors = _strings(chunk, tuple(present), pointer, limit=FIELD_MAX)
    for key in ("id", "title"):
        if chunk.get(key) == "":
            errors.append(f"[ERROR] {key} must not be empty [json-pointer:{pointer}/{key}]")
    if chunk.get("status") not in TASK_STATUSES:
        errors.append(
            f"[ERROR] status must be one of {sorted(TASK_STATUSES)} [json-pointer:{pointer}/status]"
        )
    sources = chunk.get("sources")
    if sources is not None and not _valid_sources(sources):
        errors.append(
            f"[ERROR] sources must be url elements with text and url "
            f"[json-pointer:{pointer}/sources]"
        )
    return errors


def _strings(
    chunk: dict[str, Any], keys: tuple[str, ...], pointer: str, *, limit: int | None
) -> list[str]:
    errors: list[str] = []
    for key in keys:
        value = chunk[key]
        if not isinstance(value, str):
            errors.append(f"[ERROR] {key} must be a string [json-pointer:{pointer}/{key}]")
        elif limit is not None and slack_length(value) > limit:
            errors.append(
                f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}/{key}]"
            )
    return errors


def _valid_sources(sources: Any) -> bool:
    return isinstance(sources, list) and all(
        isinstance(s, dict)
        and s.get("type") == "url"
        and isinstance(s.get("text"), str)
        and isinstance(s.get("url"), str)
        for s in sources
    )


def chunks_text_length(chunks: list[dict[str, Any]]) -> int:
    """The text a message's chunks show, for Slack's total-text limit."""
    total = 0
    for chunk in chunks:
        for key in ("text", "title", "details", "output"):
            value = chunk.get(key)
            if isinstance(value, str):
                total += slack_length(value)
    return total


def shown_chunks(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a message's structured chunks show: each task once, in the order tasks first
    appeared, as its latest update says; the latest plan title first; blocks as sent."""
    plan: dict[str, Any] | None = None
    tasks: dict[str, dict[str, Any]] = {}
    rest: list[dict[str, Any]] = []
    for chunk in chunks:
        if chunk.get("type") == "plan_update":
            plan = chunk
        elif chunk.get("type") == "task_update":
            tasks[str(chunk.get("id"))] = chunk
        else:
            rest.append(chunk)
    return ([plan] if plan else []) + list(tasks.values()) + rest
