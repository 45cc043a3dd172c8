"""Posting to Slack without bursts, drops or duplicates.

`Poster` wraps the `AsyncWebClient` for the messages a run writes. Posts to one channel go
one at a time through a per-channel token bucket (Slack allows about one message a second
per channel, with short bursts), so parallel examples never burst into 429s. A 429 that
still happens is retried by the client's `AsyncRateLimitErrorRetryHandler` (honouring
`Retry-After`), never dropped. `msg_too_long` is recovered by shortening the notification
fallback text (the content is in the blocks, already split within Slack's limits).
Connection errors are *not* retried: Slack may already have posted, and a duplicate is
worse than a gap that the log names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from blocks import OutboundMessage, clip

# What a Slack call can fail with: refused (SlackApiError), or not answered at all.
SLACK_FAILURES = (SlackClientError, aiohttp.ClientError, TimeoutError)
MIN_TEXT_CHARS = 200  # below this, msg_too_long is not about our text


@dataclass
class _Bucket:
    """A token bucket: `burst` posts at once, then `rate` a second."""

    rate: float
    burst: float
    tokens: float
    stamp: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def take(self) -> None:
        async with self.lock:  # one post at a time per channel, in arrival order
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.rate)
                self.stamp = time.monotonic()
                self.tokens = 1.0
            self.tokens -= 1


class Poster:
    """Paced, split-on-overflow posting for one workspace client."""

    def __init__(self, client: AsyncWebClient, *, rate: float = 1.0, burst: int = 3) -> None:
        self.client = client
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}

    async def post(
        self,
        channel: str,
        message: OutboundMessage,
        *,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Post one message; returns its `ts`. `metadata` marks it (Slack message metadata)."""
        await self._pace(channel)
        try:
            response = await self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, metadata=metadata, **message.post_kwargs()
            )
        except SlackApiError as exc:
            if slack_error(exc) != "msg_too_long" or len(message.text) < MIN_TEXT_CHARS:
                raise
            # Slack measured the text longer than we did (it may count differently). The
            # text is only the notification fallback: the content is in the blocks, so a
            # shorter fallback loses nothing a reader sees.
            shorter = OutboundMessage(clip(message.text, len(message.text) // 2), message.blocks)
            return await self.post(channel, shorter, thread_ts=thread_ts, metadata=metadata)
        return str(response["ts"])

    async def post_all(
        self, channel: str, messages: Sequence[OutboundMessage], *, thread_ts: str | None = None
    ) -> list[str]:
        return [await self.post(channel, m, thread_ts=thread_ts) for m in messages]

    async def update(
        self,
        channel: str,
        ts: str,
        message: OutboundMessage,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        await self.client.chat_update(
            channel=channel, ts=ts, metadata=metadata, **message.update_kwargs()
        )

    async def _pace(self, channel: str) -> None:
        bucket = self._buckets.get(channel)
        if bucket is None:
            bucket = _Bucket(self._rate, self._burst, float(self._burst))
            self._buckets[channel] = bucket
        await bucket.take()


def slack_error(exc: SlackApiError) -> str:
    """The error code Slack answered with (`not_in_channel`, `msg_too_long`, …)."""
    return str(exc.response.get("error", "")) if exc.response is not None else ""


def describe(exc: BaseException) -> str:
    """Slack's error code for a refusal, else the exception's own words."""
    if isinstance(exc, SlackApiError) and slack_error(exc):
        return slack_error(exc)
    return f"{type(exc).__name__}: {exc}"
