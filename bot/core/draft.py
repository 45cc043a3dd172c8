"""A strategy as it is being written: the plan's structured answer, parsed while it streams.

The plan arrives as JSON (`title`, `essence`, `components[{name, instruction}]`) a few
characters at a time. `parse_draft` reads whatever has arrived with jiter's partial mode (the
parser the anthropic SDK itself uses for partial JSON), keeping an unfinished trailing string
as far as it goes, so a reader sees the title, then the essence, then each component as the
model writes them. A draft is for display only: the strategy the pipeline acts on is the
validated final answer.
"""

from __future__ import annotations

from typing import Any

import jiter

from bot.core.models import Component, Strategy


def parse_draft(text: str) -> Strategy | None:
    """What the streamed answer says so far; None until its title has begun."""
    try:
        parsed: Any = jiter.from_json(text.encode(), partial_mode="trailing-strings")
    except ValueError:
        return None  # nothing parseable yet (empty, or not JSON at all)
    if not isinstance(parsed, dict):
        return None
    title = _text(parsed.get("title"))
    if not title.strip():
        return None
    return Strategy(title, _text(parsed.get("essence")), _components(parsed.get("components")))


def _components(value: Any) -> tuple[Component, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        Component(_text(item.get("name")), _text(item.get("instruction")))
        for item in value
        if isinstance(item, dict) and _text(item.get("name")).strip()
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
