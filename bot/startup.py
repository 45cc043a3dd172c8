"""Start-up checks: a dependency that refuses us stops the process; one that is away is waited for.

Two outcomes of checking Slack, the Claude API or the database at start-up, kept apart on
purpose. A refusal (a token Slack calls `invalid_auth`, a key the Claude API answers with
401, a model it does not have) will not fix itself: the check raises `SettingsError` naming
the variable and the fix, and the command exits 2 with that one line. A dependency that is
only unreachable (a network error, a 5xx) may come back: the check raises `Unreachable`,
`until_answered` logs one warning per failed attempt, at once, naming the dependency, the
problem and when the next try comes (and it does come then: each check makes one attempt,
with no retry layer of its own underneath), and the health endpoints say the same. This is
the only retry above the SDKs' own: theirs absorb a blip within one request; this one waits
out an outage at start, for as long as it lasts unless `give_up_after_s` bounds it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from bot.logs import fields

T = TypeVar("T")
log = logging.getLogger(__name__)


def listen_refusal(exc: OSError, what: str, *, choose: str = "choose another port") -> str | None:
    """The one line a port that cannot be listened on is refused with (`what` names it, e.g.
    "METRICS_PORT 9090"), or None for an error that is not about the port."""
    if exc.errno == errno.EADDRINUSE:
        return f"{what}: the port is already in use; stop what listens there or {choose}."
    if exc.errno == errno.EACCES:
        return f"{what}: not allowed to listen there; choose a port above 1023."
    return None


FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 30.0


class Unreachable(Exception):
    """A dependency did not answer (network error, 5xx); the message says which and how."""


class GaveUp(Exception):
    """A dependency did not answer within the wait allowed; the message says which and why."""


async def until_answered(
    check: Callable[[], Awaitable[T]],
    *,
    what: str,
    waiting: Callable[[str | None], None] | None = None,
    first_pause_s: float = FIRST_PAUSE_S,
    give_up_after_s: float | None = None,
) -> T:
    """`check()` until it answers; `waiting` is told what start-up waits for (None: done).
    With `give_up_after_s`, raises `GaveUp` once a next try would start past that."""
    tell = waiting or (lambda _: None)
    tell(what)
    pause = first_pause_s
    started = time.monotonic()
    while True:
        # A check that hangs (a network that drops packets) counts against the bound too.
        left = None if give_up_after_s is None else started + give_up_after_s - time.monotonic()
        bound = asyncio.timeout(None if left is None else max(left, 0.0))
        try:
            async with bound:
                result = await check()
        except TimeoutError:
            if not bound.expired():
                raise
            raise GaveUp(f"{what} did not answer within {give_up_after_s:g} s") from None
        except Unreachable as exc:
            waited = time.monotonic() - started
            if give_up_after_s is not None and waited + pause > give_up_after_s:
                raise GaveUp(f"{exc}; gave up after {waited:.0f} s") from None
            next_try = datetime.now(UTC) + timedelta(seconds=pause)
            tell(f"{what}: {exc}; next try at {next_try:%H:%M:%S} UTC")
            log.warning(
                "%s did not answer; retrying in %s",
                what,
                _seconds(pause),
                extra=fields(dependency=what, problem=str(exc), retry_in_s=round(pause, 1)),
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_S)
            continue
        tell(None)
        return result


def _seconds(value: float) -> str:
    return f"{value:g} s"
