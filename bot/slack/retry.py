"""Slack calls through an outage: the one retry layer, inside slack_sdk's retry handlers.

Every Web API call goes through the `AsyncWebClient`'s retry handlers (Bolt's per-request
clients copy them), so this is the only place a Slack call is retried:

* a 429 waits for `Retry-After` and is tried again (`AsyncRateLimitErrorRetryHandler`; a
  rate-limited call never happened);
* a connection error or a 5xx is retried with exponential backoff and jitter for up to
  `OUTAGE_BUDGET_S` (about a minute), for every call that is safe to repeat. Repeating
  `chat.update`, `conversations.replies`, `users.info` or `views.publish` changes nothing.
  Repeating `chat.postMessage` may post twice: it is retried here only when the connection
  never opened (nothing was sent). When it may have landed (the connection dropped after
  sending, a timeout, a 5xx), the handler stops and the error reaches `Poster`, which looks
  for the message by its metadata before posting again (`may_have_landed`).

Both handlers share slack_sdk's attempt counter; each keeps to its own limit by counting
its own attempts.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

OUTAGE_BUDGET_S = 60.0
MAX_INTERVAL_S = 8.0  # keep trying every few seconds, so a short outage costs only seconds
# 429s are retried (they never posted); more than the SDK's single retry, so a burst from
# several runs in one channel is absorbed rather than dropped.
RATE_LIMIT_RETRIES = 6
# Calls that may act twice when repeated. Anything else the bot calls is safe to repeat.
NOT_IDEMPOTENT = frozenset(
    {"chat.postMessage", "chat.postEphemeral", "chat.startStream", "chat.appendStream"}
)
# The connection was never made: nothing reached Slack.
NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Slack may or may not have acted: the connection failed after the request went out.
UNANSWERED = (aiohttp.ClientConnectionError, TimeoutError)


def method_of(request: HttpRequest) -> str:
    """`chat.postMessage` from `https://slack.com/api/chat.postMessage`."""
    return request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def may_have_landed(error: BaseException) -> bool:
    """True when a failed `chat.postMessage` may have been posted all the same."""
    if isinstance(error, SlackApiError):
        return error.response is not None and error.response.status_code >= 500
    return isinstance(error, UNANSWERED) and not isinstance(error, NEVER_SENT)


class OutageRetryHandler(AsyncRetryHandler):
    """Connection errors and 5xx: backoff and jitter for up to `budget_s`, for calls that
    are safe to repeat (and posts that were never sent)."""

    def __init__(
        self, *, budget_s: float = OUTAGE_BUDGET_S, max_interval_s: float = MAX_INTERVAL_S
    ):
        # The budget is in seconds, not attempts: slack_sdk's count check is made moot.
        super().__init__(
            max_retry_count=1_000, interval_calculator=BackoffRetryIntervalCalculator()
        )
        self.budget_s = budget_s
        self.max_interval_s = max_interval_s

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if _elapsed(state) >= self.budget_s:
            return False
        repeatable = method_of(request) not in NOT_IDEMPOTENT
        if error is not None:
            return isinstance(error, NEVER_SENT) or (repeatable and isinstance(error, UNANSWERED))
        return repeatable and response is not None and response.status_code >= 500

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        attempt = _count(state, "outage")
        wait = self.interval_calculator.calculate_sleep_duration(attempt)
        remaining = self.budget_s - _elapsed(state)
        state.next_attempt_requested = True
        await asyncio.sleep(max(0.0, min(wait, self.max_interval_s, remaining)))
        state.increment_current_attempt()


class RateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, counting only its own retries (outage retries share the
    SDK's attempt counter and must not use up the 429 allowance)."""

    def __init__(self, max_retry_count: int = RATE_LIMIT_RETRIES) -> None:
        super().__init__(max_retry_count=max_retry_count)

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        used = (state.custom_values or {}).get("rate_limit", 0)
        if used >= self.max_retry_count:
            return False
        if await self._can_retry_async(state=state, request=request, response=response):
            _count(state, "rate_limit")
            return True
        return False


def retry_handlers() -> list[AsyncRetryHandler]:
    """The Web API client's handlers: 429s, then outages."""
    return [RateLimitRetryHandler(), OutageRetryHandler()]


def _values(state: RetryState) -> dict[str, float]:
    if state.custom_values is None:
        state.custom_values = {"started": time.monotonic()}
    return state.custom_values


def _elapsed(state: RetryState) -> float:
    return time.monotonic() - _values(state).setdefault("started", time.monotonic())


def _count(state: RetryState, key: str) -> int:
    """How many times `key` was counted before; counts this one."""
    values = _values(state)
    before = int(values.get(key, 0))
    values[key] = before + 1
    return before
