"""A run's progress message in its thread: a Slack stream, or an ordinary message where
streaming is refused or has expired, kept current without ever holding up the run.

`ProgressMessage` takes the fold's `ShowProgress` views (`show`, which never waits) and a
task of its own sends them: the first opens the message with `chat.startStream`
(`task_display_mode` plan, the asker as recipient) carrying a `plan_update` and one
`task_update` per step; later ones append only the chunks that changed, at most one
`chat.appendStream` per `interval_s` per run and within this process's share of the method's
rate limit (`StreamPacing`), so views that arrive meanwhile are coalesced into one call (with
no append free, the message looks again once one is, never waiting in line); the view that
ends the run stops the stream with its last chunks and a plain summary. Opening
the message posts a reply, which clears the thread's loading status: it is set again at once.

Where Slack refuses the stream (an org or workspace without AI features, a missing scope, a
conversation that does not take streams: whatever `chat.startStream` answers), the progress is
posted as Block Kit (`blocks.progress_message`) and kept current with `chat.update`; where a
stream expires under a run (`message_not_in_streaming_state`), its own message is turned into
that form the same way. Slack ends a stream that gets no append for a while, and any stream
about five minutes after it began: a quiet stream is kept alive with an unchanged chunk after
`KEEPALIVE_S` without a call, and one that has lived `STREAM_LIFETIME_S` is stopped by the app
and carried on as an ordinary message before Slack would end it. Those updates are scarce
(`chat.update` is Tier 3 and shared with every run's top message: they go through the
poster's scheduler), so only the final one is required; the rest are offered, and sent only
when nothing is queued and the rate has room to spare.

`chat.startStream` is Tier 2: a run that finds this process's start budget spent tries again
with each view until its first example is in the thread, and then shows no progress message
(the thread and its loading status still show the work). Nothing here can
fail a run or cost a thread its messages: a Slack failure is logged and the progress
degrades; a bug is logged with its traceback and the progress stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from slack_sdk.errors import SlackApiError

import blocks
from bot.slack.poster import SLACK_FAILURES, Poster, Tag, Undelivered, describe, slack_error
from bot.slack.updates import TokenBucket

log = logging.getLogger(__name__)
EXPIRED = "message_not_in_streaming_state"
INTERVAL_S = 1.0  # appends per run: about one a second at most
# Slack ends a stream that gets no append for a while (the figure is unpublished; reports say
# a few minutes) and, whatever is appended, about five minutes after it began. A quiet
# stream (a long example being written) gets an unchanged chunk again after KEEPALIVE_S; one
# that has lived STREAM_LIFETIME_S is stopped and carried on as an ordinary message, before
# Slack would end it under the run. Read at use, so tests can scale them down.
KEEPALIVE_S = 20.0
STREAM_LIFETIME_S = 240.0
CLOSE_TIMEOUT_S = 15.0  # how long a run's end waits for its progress to be closed
# chat.startStream (and chat.stopStream) are Tier 2, 20+ a minute; chat.appendStream is
# Tier 4, 100+ a minute. Each budget's rate plus its burst stays within the nominal figure in
# any 60 s window: the stream is optional, so it never leans on Slack's tolerance of bursts.
STARTS_PER_MIN, STARTS_BURST = 15, 5
APPENDS_PER_MIN, APPENDS_BURST = 90, 10
Mode = Literal["new", "stream", "message", "off"]


@dataclass
class StreamPacing:
    """This process's share of the stream methods' limits (Slack counts them per workspace
    and app; one install is one workspace). Shared by every run of the process."""

    starts: TokenBucket = field(
        default_factory=lambda: TokenBucket(STARTS_PER_MIN / 60, STARTS_BURST)
    )
    appends: TokenBucket = field(
        default_factory=lambda: TokenBucket(APPENDS_PER_MIN / 60, APPENDS_BURST)
    )


@dataclass(frozen=True, slots=True)
class ProgressTarget:
    """Where a run's progress message goes: its thread, and who the stream is for."""

    recipient_user_id: str
    recipient_team_id: str
    pacing: StreamPacing
    interval_s: float = INTERVAL_S


class ProgressMessage:
    """One run's progress message; `show` each view, `close` once the run has ended."""

    def __init__(
        self,
        poster: Poster,
        target: ProgressTarget,
        *,
        channel: str,
        thread_ts: str,
        tag: Tag | None,
        restore_status: Callable[[], Awaitable[None]],
    ) -> None:
        self._poster = poster
        self._target = target
        self._channel = channel
        self._thread_ts = thread_ts
        self._tag = tag
        self._restore_status = restore_status
        self._latest: blocks.ProgressView | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent: dict[str, dict[str, Any]] = {}  # the chunks Slack shows, by task id
        self._last_send = float("-inf")
        self._opened_at = 0.0  # when the stream began
        self._streamed_at = 0.0  # when Slack last took a stream call: its idle clock
        self.mode: Mode = "new"
        self.ts: str | None = None
        self.calls: dict[str, int] = {}  # Web API calls made, by method (tests, benchmarks)

    def show(self, view: blocks.ProgressView) -> None:
        """Make `view` the progress to show; sent by the message's own task, never waited for."""
        self._latest = view
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name=f"progress-{self._thread_ts}")

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Wait (at most `timeout_s`) for the final view to be sent; then give up on it."""
        task = self._task
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            log.warning("progress of run thread %s not closed in time", self._thread_ts)
            await self.abandon()
        except asyncio.CancelledError:
            await self.abandon()
            raise

    def stop_now(self) -> None:
        """Stop sending at once, without waiting (the run was taken over elsewhere)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def abandon(self) -> None:
        """Stop sending (a run cancelled before it could say how it ended, or a close that
        timed out): the task is cancelled and awaited, never left pending behind its run."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait({task})

    async def _pump(self) -> None:
        try:
            while self.mode != "off":
                await self._until_woken()
                view = self._latest
                if self.mode != "new" and view is not None and view.outcome is None:
                    await self._pace()
                self._wake.clear()
                view = self._latest  # what arrived while pacing is sent in the same call
                assert view is not None  # the task starts with the first view
                await self._send(view)
                if view.outcome is not None:
                    return
        except Exception:
            log.exception("the progress of run thread %s failed", self._thread_ts)

    async def _until_woken(self) -> None:
        """Wait for the next view; while streaming, keep a quiet stream alive meanwhile."""
        while self.mode == "stream" and not self._wake.is_set():
            quiet = self._streamed_at + KEEPALIVE_S - time.monotonic()
            try:
                await asyncio.wait_for(self._wake.wait(), max(quiet, 0.0))
            except TimeoutError:
                await self._keep_alive()
        await self._wake.wait()

    async def _keep_alive(self) -> None:
        """Nothing new to show for a while: append an unchanged chunk so that Slack does not
        end the stream for inactivity (or retire it, if it has lived long enough)."""
        assert self._latest is not None  # the stream was opened with a view
        try:
            if self._aged():
                await self._retire(self._latest)
            elif self._sent and self._target.pacing.appends.take_now():
                chunk = self._sent.get("plan_update") or next(iter(self._sent.values()))
                self._count("chat.appendStream")
                await self._poster.client.chat_appendStream(
                    channel=self._channel, ts=str(self.ts), chunks=[chunk]
                )
                self._streamed_at = time.monotonic()
            else:  # no append free: look again shortly
                self._streamed_at = time.monotonic() - KEEPALIVE_S / 2
        except SlackApiError as exc:
            if slack_error(exc) != EXPIRED:
                raise
            self._expired()
            await self._update(self._latest, required=False)
        except SLACK_FAILURES as exc:
            log.warning("progress in run thread %s: %s", self._thread_ts, describe(exc))
            self._streamed_at = time.monotonic() - KEEPALIVE_S / 2

    def _aged(self) -> bool:
        return time.monotonic() - self._opened_at >= STREAM_LIFETIME_S

    async def _retire(self, view: blocks.ProgressView) -> None:
        """Stop a stream that has lived long enough, with what it shows now, and keep the
        progress current as an ordinary message from then on (Slack would end it soon)."""
        log.info("progress stream of run thread %s retired: updating it instead", self._thread_ts)
        self._count("chat.stopStream")
        await self._poster.client.chat_stopStream(
            channel=self._channel,
            ts=str(self.ts),
            chunks=self._changed(blocks.progress_chunks(view)),
        )
        self.mode = "message"
        await self._update(view, required=False)

    async def _pace(self) -> None:
        wait = self._last_send + self._target.interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _send(self, view: blocks.ProgressView) -> None:
        opening = self.mode == "new"
        try:
            if opening:
                await self._open(view)
            if view.outcome is not None:
                await self._finish(view)
            elif not opening:
                await self._change(view)
        except SLACK_FAILURES as exc:
            # The next view sends every chunk Slack has not shown yet; the last one closes it.
            log.warning("progress in run thread %s: %s", self._thread_ts, describe(exc))
        self._last_send = time.monotonic()

    # ---------------------------------------------------------------- opening

    async def _open(self, view: blocks.ProgressView) -> None:
        if not self._target.pacing.starts.take_now():
            # Tried again with the next view, until an example is in the thread: a progress
            # message below the examples would read out of order, so then there is none.
            if any(step.role == "example" and not step.open for step in view.steps):
                log.info("no progress in run thread %s: start budget spent", self._thread_ts)
                self.mode = "off"
            return
        chunks = blocks.progress_chunks(view)
        try:
            self._count("chat.startStream")
            response = await self._poster.client.chat_startStream(
                channel=self._channel,
                thread_ts=self._thread_ts,
                recipient_user_id=self._target.recipient_user_id,
                recipient_team_id=self._target.recipient_team_id,
                task_display_mode="plan",
                chunks=chunks,
            )
        except SlackApiError as exc:
            # Refused (no AI features here, a scope, the conversation): an ordinary message.
            log.info("streaming refused in run thread %s (%s)", self._thread_ts, slack_error(exc))
            await self._post(view)
        except SLACK_FAILURES as exc:
            log.warning("no progress in run thread %s: %s", self._thread_ts, describe(exc))
            self.mode = "off"
            return
        else:
            self.ts, self.mode = str(response["ts"]), "stream"
            self._opened_at = self._streamed_at = time.monotonic()
            self._remember(chunks)
        await self._restore_status()  # the new reply cleared the loading status

    async def _post(self, view: blocks.ProgressView) -> None:
        try:
            self.ts = await self._poster.post(
                self._channel,
                blocks.progress_message(view),
                thread_ts=self._thread_ts,
                tag=self._tag,
            )
            self.mode = "message"
            self._count("chat.postMessage")
        except (Undelivered, *SLACK_FAILURES) as exc:
            log.warning("no progress in run thread %s: %s", self._thread_ts, describe(exc))
            self.mode = "off"

    # ---------------------------------------------------------------- changing

    async def _change(self, view: blocks.ProgressView) -> None:
        if self.mode == "message":
            await self._update(view, required=False)
            return
        if self.mode != "stream":
            return
        chunks = self._changed(blocks.progress_chunks(view))
        if not chunks:
            return
        if self._aged():
            await self._retire_or_update(view)
            return
        appends = self._target.pacing.appends
        if not appends.take_now():
            # Never wait in line: look again once a token is free, with whatever is newest
            # then (the run's last view, which stops the stream, never waits behind this).
            asyncio.get_running_loop().call_later(appends.wait_s(), self._wake.set)
            return
        try:
            self._count("chat.appendStream")
            await self._poster.client.chat_appendStream(
                channel=self._channel, ts=str(self.ts), chunks=chunks
            )
        except SlackApiError as exc:
            if slack_error(exc) != EXPIRED:
                raise
            self._expired()
            await self._update(view, required=False)
            return
        self._streamed_at = time.monotonic()
        self._remember(chunks)

    async def _finish(self, view: blocks.ProgressView) -> None:
        if self.mode == "message":
            await self._update(view, required=True)
            return
        if self.mode != "stream":
            return
        summary = {"type": "markdown_text", "text": blocks.progress_summary(view)}
        chunks = [*self._changed(blocks.progress_chunks(view)), summary]
        try:
            self._count("chat.stopStream")
            await self._poster.client.chat_stopStream(
                channel=self._channel, ts=str(self.ts), chunks=chunks
            )
        except SlackApiError as exc:
            if slack_error(exc) != EXPIRED:
                raise
            self._expired()
            await self._update(view, required=True)

    async def _retire_or_update(self, view: blocks.ProgressView) -> None:
        try:
            await self._retire(view)
        except SlackApiError as exc:
            if slack_error(exc) != EXPIRED:
                raise
            self._expired()
            await self._update(view, required=False)

    def _expired(self) -> None:
        log.info("progress stream of run thread %s expired: updating it instead", self._thread_ts)
        self.mode = "message"

    async def _update(self, view: blocks.ProgressView, *, required: bool) -> None:
        """The progress as Block Kit in place of the message: the final update always (through
        the poster's scheduler), the others only offered (queued edits, the top messages',
        come first)."""
        assert self.ts is not None
        message = blocks.progress_message(view)
        what = "the progress message"
        try:
            if required:
                await self._poster.update(self._channel, self.ts, message, what=what)
            elif self._poster.offer_update(self._channel, self.ts, message, what=what) is None:
                return  # queued edits come first; the scheduler logs a failure of this one
            self._count("chat.update")
        except SLACK_FAILURES as exc:
            log.warning(
                "could not update the progress in run thread %s: %s",
                self._thread_ts,
                describe(exc),
            )

    # ---------------------------------------------------------------- helpers

    def _count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1

    def _changed(self, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for c in chunks if self._sent.get(_key(c)) != c]

    def _remember(self, chunks: list[dict[str, Any]]) -> None:
        self._sent.update((_key(c), c) for c in chunks)


def _key(chunk: dict[str, Any]) -> str:
    return str(chunk.get("id", chunk["type"]))
