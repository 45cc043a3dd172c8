"""Pacing `chat.update` for one workspace: a queue that never exceeds Slack's Tier 3 limit.

`chat.update` is Tier 3: 50 calls a minute per workspace and app ("50+", sporadic bursts
welcome). Every edit of a message the bot makes goes through one `UpdateScheduler`:

* Each message (channel, ts) has at most one pending update, and the latest content wins:
  a strategy update still waiting when the run ends is replaced by the final one, which
  shows the strategy too. Callers get a future per pending update; an update replaced
  before it was sent shares the future of the one that replaced it, so its caller learns
  the outcome of what Slack was actually sent; the replacement keeps the metadata of the
  one it replaced unless it brings its own (a draft replacing the run's marked edit must
  not drop the mark). A message with an update in flight gets a new pending one, sent
  after the first has answered (edits of one message stay in order).
* Pending updates go out in the order they were first queued, through a token bucket whose
  burst plus a minute's refill stays under the limit (`burst + rate × window ≤ limit`), so
  no 60 s window can hold more than the limit, however the sends fall. The rate is taken
  5% under that (Slack counts calls as they arrive, we pace them as they leave: a call
  delayed on the way would land the next just inside the limit). With the defaults: a
  burst of 10, then 0.63 a second; at most 48 in any minute.
* Informational updates (a draft of the strategy, "Sonnet is reviewing") are `offer`ed:
  taken only when nothing is queued and the bucket has more than a reserve in hand, or
  free of charge when the message already has an update pending (they replace its
  content). Under load they give way; the updates that matter never wait for them.
* Several instances share one workspace's limit: `share(n)` gives this process 1/n of the
  rate and burst (`bot.slack.liveness` tells it how many instances are alive).
* `close` sends what is still queued, at the same pace, for a grace period, and names in
  the log every update it could not send; their futures fail with `UpdateNotSent`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from blocks import OutboundMessage

log = logging.getLogger(__name__)

UPDATE_LIMIT = 50  # chat.update is Tier 3: 50+ a minute per workspace and app
UPDATE_WINDOW_S = 60.0
# Slack counts calls as they arrive, we pace them as they leave: 5% under the rate absorbs
# calls delayed on the way (with the defaults at most 48 leave in any minute, and delays may
# differ by up to 3 s before a minute of arrivals could hold 51).
PACING_MARGIN = 0.95
Key = tuple[str, str]  # (channel, ts) of the message being edited


class UpdateNotSent(SlackClientError):
    """The update was still queued (or unanswered) when the process shut down: it never
    reached Slack, like a call that could not connect."""


@dataclass(frozen=True, slots=True)
class UpdateLimit:
    """Slack's limit on `chat.update` for a workspace: `limit` calls in any `window_s`."""

    limit: int = UPDATE_LIMIT
    window_s: float = UPDATE_WINDOW_S

    def __post_init__(self) -> None:
        if self.limit < 2 or self.window_s <= 0:
            # The burst takes at least one edit: with a limit of 1 no rate would be left,
            # and the edits after the first would wait forever.
            raise ValueError(f"chat.update limit {self.limit} in {self.window_s} s: too small")

    @property
    def burst(self) -> float:
        """A fifth of the limit may go at once (10 of 50); the rest is paced."""
        return float(max(1, self.limit // 5))

    @property
    def rate(self) -> float:
        """Per second: what is left of the window's limit after a burst, under the margin."""
        return (self.limit - self.burst) / self.window_s * PACING_MARGIN

    @property
    def reserve(self) -> float:
        """Tokens an informational update must leave in hand (5 of a burst of 10)."""
        return self.burst // 2


@dataclass
class TokenBucket:
    """A token bucket on an injectable clock (tests drive it without waiting): `burst`
    calls at once, then `rate` a second. Starts full unless told how many are in hand."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    start: float | None = None  # tokens in hand at first (None: a full burst)
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst if self.start is None else self.start
        self.stamp = self.clock()

    def refill(self) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def wait_s(self) -> float:
        """0 if a token can be taken now, else how long until one can."""
        missing = 1.0 - self.refill()
        # A hair short of a token is a token: float rounding must not spin on a 1e-16 s wait.
        return 0.0 if missing <= 1e-9 else missing / self.rate

    def take_now(self) -> bool:
        """Take a token if one is free now; False leaves the bucket as it was."""
        if self.wait_s() > 0:
            return False
        self.tokens -= 1
        return True


@dataclass(eq=False)
class _Pending:
    kwargs: dict[str, Any]
    what: str
    future: asyncio.Future[None]


class UpdateScheduler:
    """Paced, coalescing `chat.update` for one workspace client."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        limit: UpdateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self.limit = limit or UpdateLimit()
        self._clock = clock
        self._sleep = sleep
        self._bucket = TokenBucket(self.limit.rate, self.limit.burst, clock)
        self.instances = 1
        self._pending: OrderedDict[Key, _Pending] = OrderedDict()
        self._in_flight: dict[Key, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        # Awaited before each edit: this instance's lease (`bot.slack.lease`), so an instance
        # woken from a freeze sends no edit for runs another has taken over.
        self.gate: Callable[[], Awaitable[None]] | None = None
        self.sent = 0  # chat.update calls made, for tests and benchmarks
        self.coalesced = 0  # updates replaced before they were sent

    @property
    def queued(self) -> int:
        return len(self._pending)

    @property
    def rate(self) -> float:
        """Edits a second this process may send now (its share of the workspace's)."""
        return self._bucket.rate

    def share(self, instances: int, *, quiet_s: float = 0.0) -> None:
        """This process is one of `instances` sharing the workspace: take 1/n of the rate
        and of the burst (at least one token, or nothing could ever be sent). `quiet_s`:
        this process has just joined others, which still spend their larger share until
        they count it; its next edit waits that long."""
        instances = max(1, instances)
        self._bucket.refill()
        if instances != self.instances:
            self.instances = instances
            self._bucket.rate = self.limit.rate / instances
            self._bucket.burst = max(1.0, self.limit.burst / instances)
            self._bucket.tokens = min(self._bucket.tokens, self._bucket.burst)
            log.info("chat.update pacing shared by %d instances", instances)
        if instances > 1 and quiet_s > 0:
            self._bucket.tokens = min(self._bucket.tokens, 1.0 - quiet_s * self._bucket.rate)

    def enqueue(
        self,
        channel: str,
        ts: str,
        message: OutboundMessage,
        *,
        metadata: dict[str, Any] | None = None,
        what: str = "a message",
    ) -> asyncio.Future[None]:
        """Queue an edit of (channel, ts); replaces the content of one still waiting.
        The future is done once Slack has answered for this content or newer."""
        kwargs = {"metadata": metadata, **message.update_kwargs()}
        key = (channel, ts)
        waiting = self._pending.get(key)
        if waiting is not None:
            if metadata is None:
                # Slack keeps a message's metadata through an edit that sends none: the
                # edit replacing this one must carry what this one would have set.
                kwargs["metadata"] = waiting.kwargs["metadata"]
            waiting.kwargs = kwargs
            waiting.what = what
            self.coalesced += 1
            return waiting.future
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        pending = _Pending(kwargs, what, future)
        if self._closed:
            log.error(
                "shut down: %s (message %s in %s) was not updated in Slack", what, ts, channel
            )
            future.set_exception(UpdateNotSent(f"{what}: the process is shutting down"))
            return future
        self._pending[key] = pending
        self._start()
        self._wake.set()
        return future

    def offer(
        self,
        channel: str,
        ts: str,
        message: OutboundMessage,
        *,
        metadata: dict[str, Any] | None = None,
        what: str = "a draft",
    ) -> asyncio.Future[None] | None:
        """Queue an informational edit only if it costs nothing that matters: it replaces
        an update already pending for the message, or nothing is queued and the bucket has
        more than its reserve in hand. None when it was not taken."""
        key = (channel, ts)
        if key not in self._pending:
            if self._pending or self._closed:
                return None
            reserve = self.limit.reserve / self.instances
            if self._bucket.refill() < reserve + 1:
                return None
        return self.enqueue(channel, ts, message, metadata=metadata, what=what)

    def _start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="chat.update pacing")

    def _next(self) -> Key | None:
        """The oldest pending update whose message has no update in flight."""
        return next((key for key in self._pending if key not in self._in_flight), None)

    async def _work(self) -> None:
        try:
            await self._pace()
        except Exception:
            # A bug here must not leave every run's end waiting on an edit that will never
            # be sent: each one queued is failed (and named), and the next enqueue restarts.
            log.exception("chat.update pacing failed")
            for (channel, ts), pending in self._pending.items():
                log.error(
                    "%s (message %s in %s) was not updated in Slack", pending.what, ts, channel
                )
                _settle(pending.future, UpdateNotSent(f"{pending.what}: the pacing failed"))
            self._pending.clear()

    async def _pace(self) -> None:
        while True:
            if self._next() is None:
                if self._closed and not self._pending and not self._in_flight:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._bucket.wait_s()
            if wait > 0:
                await self._sleep(wait)
                continue  # the share, or what is ready, may have changed meanwhile
            key = self._next()
            if key is None:
                continue
            self._bucket.tokens -= 1
            pending = self._pending.pop(key)
            self._in_flight[key] = asyncio.create_task(self._send(key, pending), name="chat.update")

    async def _send(self, key: Key, pending: _Pending) -> None:
        channel, ts = key
        try:
            if self.gate is not None:
                await self.gate()
            self.sent += 1
            await self._client.chat_update(channel=channel, ts=ts, **pending.kwargs)
        except asyncio.CancelledError:
            log.error(
                "shutting down: %s (message %s in %s) was left unanswered",
                pending.what,
                ts,
                channel,
            )
            _settle(pending.future, UpdateNotSent(f"{pending.what}: cancelled unanswered"))
            raise
        except Exception as exc:
            log.warning("could not update %s in %s: %s", pending.what, channel, _describe(exc))
            _settle(pending.future, exc)
        else:
            _settle(pending.future, None)
        finally:
            del self._in_flight[key]
            self._wake.set()

    async def close(self, grace_s: float) -> None:
        """Send what is queued, at the usual pace, for up to `grace_s`; then give up on the
        rest, naming each in the log (never dropped silently)."""
        self._closed = True
        self._wake.set()
        worker = self._worker
        if worker is not None and not worker.done():
            timer = asyncio.ensure_future(self._sleep(grace_s))
            await asyncio.wait({worker, timer}, return_when=asyncio.FIRST_COMPLETED)
            timer.cancel()
            worker.cancel()
            await asyncio.gather(worker, timer, return_exceptions=True)
        in_flight = list(self._in_flight.values())
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        for (channel, ts), pending in self._pending.items():
            log.error(
                "shutting down: %s (message %s in %s) was never updated in Slack",
                pending.what,
                ts,
                channel,
            )
            _settle(pending.future, UpdateNotSent(f"{pending.what}: not sent at shutdown"))
        self._pending.clear()


def _settle(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    """Give the future its outcome, unless someone cancelled it meanwhile."""
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failure as seen: the scheduler logs it, and a caller who stopped waiting (an
    update replaced by a newer one) must not leave 'exception never retrieved' behind."""
    if not future.cancelled():
        future.exception()


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    error = response.get("error") if response is not None else None
    return str(error) if error else f"{type(exc).__name__}: {exc}"
