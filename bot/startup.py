"""Start-up checks: a dependency that refuses us stops the process; one that is away is waited for.

Two outcomes of checking Slack, the Claude API or the database at start-up, kept apart on
purpose. A refusal (a token Slack calls `invalid_auth`, a key the Claude API answers with
401, a model it does not have) will not fix itself: the check raises `SettingsError` naming
the variable and the fix, and the command exits 2 with that one line. A dependency that is
only unreachable (a network error, a 5xx) may come back: the check raises `Unreachable`,
`until_answered` logs one warning per attempt and tries again with growing pauses, and the
health endpoints say what start-up is waiting for. This is the only retry above the SDKs'
own: theirs absorb a blip within one request; this one waits out an outage at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.logs import fields

T = TypeVar("T")
log = logging.getLogger(__name__)
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 30.0


class Unreachable(Exception):
    """A dependency did not answer (network error, 5xx); the message says which and how."""


async def until_answered(
    check: Callable[[], Awaitable[T]],
    *,
    what: str,
    waiting: Callable[[str | None], None] | None = None,
    first_pause_s: float = FIRST_PAUSE_S,
) -> T:
    """`check()` until it answers; `waiting` is told what start-up waits for (None: done)."""
    pause = first_pause_s
    while True:
        try:
            result = await check()
        except Unreachable as exc:
            if waiting is not None:
                waiting(f"{what}: {exc}")
            log.warning(
                "%s did not answer; retrying",
                what,
                extra=fields(dependency=what, problem=str(exc), retry_in_s=round(pause, 1)),
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_S)
            continue
        if waiting is not None:
            waiting(None)
        return result
