"""Posting to Slack without bursts, drops or duplicates.

`Poster` wraps the `AsyncWebClient` for the messages a run writes. Posts to one channel go
one at a time through a per-channel token bucket (Slack allows about one message a second
per channel, with short bursts), so parallel examples never burst into 429s. A 429 that
still happens, a connection error or a 5xx is retried by the client's retry handlers
(`bot.slack.retry`, the one retry layer), never dropped.

A refusal about size (`msg_blocks_too_long`, `msg_too_long`, or `invalid_blocks` where Slack
counted differently from us) is recovered by posting smaller messages: a shorter fallback
first for `msg_too_long`, else the message cut in two (`blocks.resplit`), up to
`MAX_RESPLITS` times deep; parts that still cannot be posted are raised as `Undelivered`,
with their content, so the thread can say what is missing.

A post that may have landed although its answer was lost (the connection dropped after
sending, a timeout, a 5xx) is not simply sent again: each run message carries a `Tag` (run
id and part) in its message metadata, and the poster looks for it in the thread with
`conversations.replies` first (a top-level message, in the channel's recent history with
`conversations.history`). Found, its `ts` is the answer; absent, it is posted again;
for as long as the outage budget lasts. If the thread cannot be read (the bot posts in a
public channel it is not a member of) the post is sent again: a rare duplicate is better
than a lost review. (Of a message re-split for size, only the first part carries the tag.)

Edits (`chat.update`, Tier 3: about 50 a minute per workspace) go through the poster's
`UpdateScheduler` (`bot.slack.updates`): one pending edit per message, the latest content
winning, paced so that no minute holds more than Slack allows; informational edits (drafts)
are offered and taken only when there is room to spare.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from blocks import OutboundMessage, resplit, shorten_fallback, undelivered_message
from bot.slack.retry import OUTAGE_BUDGET_S, may_have_landed
from bot.slack.updates import TokenBucket, UpdateLimit, UpdateScheduler

log = logging.getLogger(__name__)
# What a Slack call can fail with: refused (SlackApiError), or not answered at all.
SLACK_FAILURES = (SlackClientError, aiohttp.ClientError, TimeoutError)
# Refusals that smaller messages can get past.
SIZE_REFUSALS = frozenset({"msg_blocks_too_long", "msg_too_long", "invalid_blocks"})
MAX_RESPLITS = 2  # halves, then quarters: past that the refusal is not about size
# The metadata event type of a run message that carries no other mark.
EVENT_TYPE = "orchestrate_run_message"
REPLIES_PAGE = 200  # Slack recommends no more than 200 messages a page
CLOCK_SKEW_S = 300.0  # how far back a top-level post that may have landed is looked for


@dataclass(frozen=True, slots=True)
class Tag:
    """Which run, and which part of its thread, a message is (sent in its metadata)."""

    run_id: str
    part: str

    @property
    def payload(self) -> dict[str, str]:
        return {"run_id": self.run_id, "part": self.part}

    def metadata(self) -> dict[str, Any]:
        return {"event_type": EVENT_TYPE, "event_payload": self.payload}

    def marks(self, metadata: Any) -> bool:
        """Whether a message's metadata (ours, of any orchestrate event type) is this tag."""
        if not isinstance(metadata, dict) or not isinstance(metadata.get("event_payload"), dict):
            return False
        payload = metadata["event_payload"]
        return str(metadata.get("event_type", "")).startswith("orchestrate_") and all(
            payload.get(key) == value for key, value in self.payload.items()
        )


def tagged(metadata: dict[str, Any] | None, tag: Tag | None) -> dict[str, Any] | None:
    """`metadata` with the tag joined to its payload (a message has one metadata object)."""
    if tag is None:
        return metadata
    if metadata is None:
        return tag.metadata()
    return {**metadata, "event_payload": {**metadata.get("event_payload", {}), **tag.payload}}


class Undelivered(Exception):
    """Slack refused a message even cut smaller; `lost` are the parts it never showed."""

    def __init__(self, error: str, lost: Sequence[OutboundMessage]) -> None:
        super().__init__(f"{error}: {len(lost)} message part(s) not posted")
        self.error = error
        self.lost = tuple(lost)


# assistant.threads.setStatus has "special rate limits" (unpublished; the Slack stand-in reads
# them as Tier 3, 50 in any 60 s). The loading status is informational, so a process sets it
# within a budget that stays under that (rate plus burst ≤ 50 a minute) and skips a change
# when the budget is spent, rather than hold a run behind a 429's Retry-After: the next
# change, or the bot's next post (which clears it), puts it right.
STATUSES_PER_MIN, STATUSES_BURST = 40, 10


# Slack counts a channel's posts as they arrive, and we pace them as they leave: a post
# delayed on the way lands the next one just inside the limit. Pacing 5% under the rate
# absorbs that jitter (about 50 ms a post at one a second).
PACING_MARGIN = 0.95


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

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        rate: float = 1.0,
        burst: int = 3,
        replies_page: int = REPLIES_PAGE,
        update_limit: UpdateLimit | None = None,
    ) -> None:
        self.client = client
        self._statuses = TokenBucket(STATUSES_PER_MIN / 60, STATUSES_BURST)
        self._rate = rate
        self._burst = burst
        self._replies_page = replies_page
        self._buckets: dict[str, _Bucket] = {}
        self.updates = UpdateScheduler(client, limit=update_limit)
        # Awaited before each post: this instance's lease (see `UpdateScheduler.gate`).
        self.gate: Callable[[], Awaitable[None]] | None = None

    def fence(self, gate: Callable[[], Awaitable[None]]) -> None:
        """Hold every post and edit to `gate` (this instance's lease)."""
        self.gate = gate
        self.updates.gate = gate

    async def post_or_refusal(
        self,
        channel: str,
        message: OutboundMessage,
        *,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        tag: Tag | None = None,
    ) -> tuple[list[OutboundMessage], str] | None:
        """`post`, with what Slack refused (even cut smaller) returned rather than raised:
        the parts it never showed and its error code, for a notice that names them; None
        once posted. A post Slack did not answer, even after the retries, still raises."""
        try:
            await self.post(channel, message, thread_ts=thread_ts, metadata=metadata, tag=tag)
        except Undelivered as exc:
            return list(exc.lost), exc.error
        except SlackApiError as exc:
            return [message], slack_error(exc)
        return None

    async def report_refused(
        self,
        channel: str,
        thread_ts: str | None,
        *,
        what: str,
        error: str,
        lost: list[OutboundMessage],
        tag: Tag | None = None,
    ) -> None:
        """Log that Slack refused `what` (even cut smaller) and name it in the thread, with
        what is missing (`undelivered_message`); a notice Slack will not take is logged."""
        log.error("Slack refused %s in thread %s: %s", what, thread_ts, error)
        notice = undelivered_message(what=what, error=error, lost=lost)
        try:
            await self.post(channel, notice, thread_ts=thread_ts, tag=tag)
        except (Undelivered, *SLACK_FAILURES) as exc:
            log.error("could not say so in thread %s: %s", thread_ts, describe(exc))

    async def post(
        self,
        channel: str,
        message: OutboundMessage,
        *,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        tag: Tag | None = None,
    ) -> str:
        """Post one message (in smaller parts if Slack refuses its size); returns the `ts` of
        the first part, which carries `metadata` (Slack message metadata). Later parts of a
        top-level message go into its thread. With a `tag` (joined to the metadata) and a
        thread, a post that may have landed is looked for before it is sent again.

        Raises SlackApiError when Slack refuses for another reason, `Undelivered` when parts
        of a re-split message could still not be posted.
        """
        marked = tagged(metadata, tag)
        deadline = time.monotonic() + OUTAGE_BUDGET_S
        # Slack's clock, not ours, stamps the message: look back generously.
        since = time.time() - CLOCK_SKEW_S
        while True:
            try:
                return await self._post(
                    channel, message, thread_ts=thread_ts, metadata=marked, depth=0
                )
            except SLACK_FAILURES as exc:
                if tag is None or not may_have_landed(exc) or time.monotonic() > deadline:
                    raise
                log.warning(
                    "%s of run %s may have been posted (%s)", tag.part, tag.run_id, describe(exc)
                )
                if thread_ts is None:
                    landed = await self.find_in_channel(channel, tag, since=since)
                else:
                    landed = await self.find(channel, thread_ts, tag)
            if landed is not None:
                return landed

    async def _post(
        self,
        channel: str,
        message: OutboundMessage,
        *,
        thread_ts: str | None,
        metadata: dict[str, Any] | None,
        depth: int,
    ) -> str:
        await self._pace(channel)
        if self.gate is not None:
            await self.gate()
        try:
            response = await self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, metadata=metadata, **message.post_kwargs()
            )
            return str(response["ts"])
        except SlackApiError as exc:
            error = slack_error(exc)
            parts = _smaller(message, error) if depth < MAX_RESPLITS else None
            if parts is None:
                if depth:
                    raise Undelivered(error, [message]) from exc
                raise
        log.warning("Slack refused a message (%s); posting it as %d parts", error, len(parts))
        return await self._post_parts(
            channel, parts, thread_ts=thread_ts, metadata=metadata, depth=depth + 1
        )

    async def _post_parts(
        self,
        channel: str,
        parts: Sequence[OutboundMessage],
        *,
        thread_ts: str | None,
        metadata: dict[str, Any] | None,
        depth: int,
    ) -> str:
        first: str | None = None
        lost: list[OutboundMessage] = []
        error = ""
        for index, part in enumerate(parts):
            if first is None and index and thread_ts is None:
                lost.append(part)  # the thread the rest belongs to was never started
                continue
            mark = metadata if first is None else None
            try:
                ts = await self._post(
                    channel, part, thread_ts=thread_ts or first, metadata=mark, depth=depth
                )
            except Undelivered as exc:
                lost += exc.lost
                error = exc.error
                continue
            except SlackApiError as exc:
                lost.append(part)
                error = slack_error(exc)
                continue
            first = first or ts
        if lost or first is None:
            raise Undelivered(error, lost)
        return first

    async def find(self, channel: str, thread_ts: str, tag: Tag) -> str | None:
        """The `ts` of the message tagged `tag` in the thread, or None if it is not there
        (or the thread cannot be read: then it is posted again)."""
        pages = self.client.conversations_replies(
            channel=channel, ts=thread_ts, include_all_metadata=True, limit=self._replies_page
        )
        return await _first_tagged(pages, tag, where=f"thread {thread_ts}")

    async def parts_posted(self, channel: str, thread_ts: str, run_id: str) -> dict[str, str]:
        """The parts of `run_id` already in the thread (part → ts), read from the tags its
        messages carry: what a resumed run must not post again. Empty if the thread cannot
        be read (then a part may be posted twice rather than lost)."""
        found: dict[str, str] = {}
        pages = self.client.conversations_replies(
            channel=channel, ts=thread_ts, include_all_metadata=True, limit=self._replies_page
        )
        try:
            async for page in await pages:
                for message in page.get("messages") or []:
                    metadata = message.get("metadata")
                    if not isinstance(metadata, dict):
                        continue
                    payload = metadata.get("event_payload")
                    if isinstance(payload, dict) and payload.get("run_id") == run_id:
                        part = payload.get("part")
                        if isinstance(part, str):
                            found.setdefault(part, str(message["ts"]))
        except SLACK_FAILURES as exc:
            log.warning("cannot read thread %s for a resumed run: %s", thread_ts, describe(exc))
        return found

    async def find_in_channel(self, channel: str, tag: Tag, *, since: float) -> str | None:
        """The `ts` of the top-level message tagged `tag` posted after `since` (epoch
        seconds), newest first, or None (also when the channel cannot be read)."""
        pages = self.client.conversations_history(
            channel=channel,
            oldest=f"{since:.6f}",
            include_all_metadata=True,
            limit=self._replies_page,
        )
        return await _first_tagged(pages, tag, where=channel)

    async def update(
        self,
        channel: str,
        ts: str,
        message: OutboundMessage,
        *,
        metadata: dict[str, Any] | None = None,
        what: str = "a message",
    ) -> None:
        """Replace a message and wait until Slack has answered (paced with every other
        edit: under load this can take a while; `enqueue_update` does not wait)."""
        # Shielded: a caller that stops waiting leaves the edit queued (and its future to
        # whoever else shares it).
        await asyncio.shield(
            self.updates.enqueue(channel, ts, message, metadata=metadata, what=what)
        )

    def enqueue_update(
        self,
        channel: str,
        ts: str,
        message: OutboundMessage,
        *,
        metadata: dict[str, Any] | None = None,
        what: str = "a message",
    ) -> asyncio.Future[None]:
        """Queue the replacement of a message (replacing one still queued for it); the
        future is done once Slack answered for this content or newer."""
        return self.updates.enqueue(channel, ts, message, metadata=metadata, what=what)

    def offer_update(
        self,
        channel: str,
        ts: str,
        message: OutboundMessage,
        *,
        metadata: dict[str, Any] | None = None,
        what: str = "a draft",
    ) -> asyncio.Future[None] | None:
        """Queue an informational replacement only if there is room to spare (or it can
        replace one already queued for the message); None if it was not taken."""
        return self.updates.offer(channel, ts, message, metadata=metadata, what=what)

    async def close(self, grace_s: float) -> None:
        """Send the edits still queued for up to `grace_s`; the rest are logged as lost."""
        await self.updates.close(grace_s)

    async def set_status(
        self, channel: str, thread_ts: str, status: str, loading_messages: Sequence[str] = ()
    ) -> None:
        """The thread's loading indicator; an empty `status` clears it. Skipped when this
        process's share of the method's rate limit is spent (see `STATUSES_PER_MIN`)."""
        if not self._statuses.take_now():
            log.debug("loading status of thread %s not changed: rate budget spent", thread_ts)
            return
        await self.client.assistant_threads_setStatus(
            channel_id=channel,
            thread_ts=thread_ts,
            status=status,
            loading_messages=list(loading_messages) or None,
        )

    async def _pace(self, channel: str) -> None:
        bucket = self._buckets.get(channel)
        if bucket is None:
            bucket = _Bucket(self._rate * PACING_MARGIN, self._burst, float(self._burst))
            self._buckets[channel] = bucket
        await bucket.take()


async def _first_tagged(
    pages: Awaitable[AsyncSlackResponse], tag: Tag, *, where: str
) -> str | None:
    """The `ts` of the first message tagged `tag` in a paginated listing (the SDK's response
    follows `next_cursor` when iterated), or None if none is, or the listing is refused."""
    try:
        async for page in await pages:
            for found in page.get("messages") or []:
                if tag.marks(found.get("metadata")):
                    return str(found["ts"])
    except SlackApiError as exc:
        log.warning("cannot read %s to look for %s: %s", where, tag.part, describe(exc))
    return None


def _smaller(message: OutboundMessage, error: str) -> list[OutboundMessage] | None:
    """What to try instead of `message` after Slack refused it with `error`; None if nothing.

    `msg_too_long` is about the fallback `text`: a shorter one is tried first.
    """
    if error not in SIZE_REFUSALS:
        return None
    shorter = shorten_fallback(message) if error == "msg_too_long" else None
    return [shorter] if shorter is not None else resplit(message)


def slack_error(exc: SlackApiError) -> str:
    """The error code Slack answered with (`not_in_channel`, `msg_too_long`, …)."""
    return str(exc.response.get("error", "")) if exc.response is not None else ""


def describe(exc: BaseException) -> str:
    """Slack's error code for a refusal, else the exception's own words."""
    if isinstance(exc, SlackApiError) and slack_error(exc):
        return slack_error(exc)
    return f"{type(exc).__name__}: {exc}"
