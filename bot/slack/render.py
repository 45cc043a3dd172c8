"""The posting shell around the thread fold: pipeline events in, Slack messages out.

`ThreadRenderer` is the `emit` target for one run (besides the ledger). It folds each
event with `bot.slack.thread.advance` and performs the effects in order. The run's first
message is the thread's root for `/orchestrate`, or a reply when the run answers inside an
existing thread (a mention, a re-plan); it carries the run's `orchestrate_run` mark, and the
message that closes the run carries its `orchestrate_footer` mark (`bot.slack.threads`). A
Slack failure while performing one effect is logged and the rest go on: the ledger still
records every call, and one lost message must not cost the rest of the thread. Nothing is
dropped silently: a message Slack refused (even cut smaller by the poster) is named in the
thread with how much of it is missing and how it began.

Edits of the first message are queued with the poster's `chat.update` scheduler, never
awaited on the way: a run's events do not wait for a minute-long queue. Only at the run's
end does the renderer wait for its last edit (the final status, which replaced any edit
still queued) and report it if Slack refused it or could not be reached; an edit replaced
before it was sent is not a failure. Drafts of the first message (the strategy as it
streams) and the informational "reviewing" edit are offered: at most one draft every
`draft_interval_s` per run, and only while the rate has room to spare. A draft that comes
too soon is skipped rather than queued: the next one says more, and the final strategy
replaces them all. The loading status belongs to the thread's root; a draft or a status
Slack refuses is only logged (the next one, or the end, supersedes it).

The progress message (`bot.slack.progress`, when on) is handed each `ShowProgress` without
waiting: its own task streams it, coalescing what arrives meanwhile. Its first reply clears
the loading status, which it then sets again as it last was. When the run ends the renderer
waits, a bounded time, for the progress to be closed.

Each message also carries its part of the run (a `Tag` joined to its metadata), so a post
whose answer was lost is looked for before it is sent again (`Poster`), and a Slack call
is retried through an outage by the client (`bot.slack.retry`). What Slack still could not
be reached for is named in the thread when the run ends, so no thread is left saying "⏳"
or missing its review without a word.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import assert_never

from slack_sdk.errors import SlackApiError

import blocks
from bot.core.events import Event, RunFailed, RunFinished
from bot.slack.poster import SLACK_FAILURES, Poster, Tag, Undelivered, describe, slack_error
from bot.slack.progress import ProgressMessage, ProgressTarget
from bot.slack.thread import (
    DraftTop,
    Effect,
    Post,
    SetStatus,
    ShowProgress,
    ThreadState,
    UpdateTop,
    abandoned,
    advance,
    top,
)
from bot.slack.threads import footer_metadata, run_metadata

log = logging.getLogger(__name__)
DRAFT_INTERVAL_S = 1.0  # chat.update is Tier 3: about once a second per run at most
TOP = "the first message's status"


class ThreadRenderer:
    """Renders one run's events into its channel thread."""

    def __init__(
        self,
        poster: Poster,
        *,
        channel: str,
        thread_ts: str,
        asker_id: str,
        question: str,
        top_ts: str | None = None,
        run_id: str | None = None,
        draft_interval_s: float = DRAFT_INTERVAL_S,
        progress: ProgressTarget | None = None,
        web_link: str | None = None,
        posted_before: dict[str, str] | None = None,
    ) -> None:
        self._poster = poster
        # A resumed run's parts already in the thread (part → ts): not posted again.
        self._posted_before = posted_before or {}
        self._fenced = False
        self.channel = channel
        self.thread_ts = thread_ts
        self.top_ts = top_ts or thread_ts
        self.run_id = run_id
        self.state = ThreadState(
            asker_id=asker_id,
            question=question,
            run_id=run_id,
            progress=progress is not None,
            web_link=web_link,
        )
        self._status_now: blocks.ThreadStatus | None = None
        self.progress = (
            None
            if progress is None
            else ProgressMessage(
                poster,
                progress,
                channel=channel,
                thread_ts=thread_ts,
                tag=self._tag("progress.1"),
                restore_status=self._restore_status,
            )
        )
        self._draft_interval_s = draft_interval_s
        self._last_update = float("-inf")
        self.drafts_shown = 0  # for tests and benchmarks
        self.unreachable: list[str] = []  # what Slack could not be reached for, in order
        # The first message's latest queued edit (its outcome is what counts) and content.
        self._top_update: asyncio.Future[None] | None = None
        self._top_message: blocks.OutboundMessage | None = None
        # Set once the run's last message is in its thread: what a follow-up in the thread
        # waits for. The first message's last edit may still wait in the update queue (a
        # minute under load), and the thread's conversation need not wait for it.
        self.posted = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        if self._fenced:
            return
        self.state, effects = advance(self.state, event)
        for effect in effects:
            await self._perform(effect)
        if isinstance(event, RunFinished | RunFailed):
            self.posted.set()
            await self._close_progress()
            await self._settle_top()
            await self._report_unreachable()

    async def _perform(self, effect: Effect) -> None:
        match effect:
            case Post(messages=messages, what=what, part=part, closes_run=closes_run):
                await self._post(messages, what=what, part=part, closes_run=closes_run)
            case UpdateTop(message=message, informational=informational):
                self._update_top(message, informational=informational)
            case DraftTop(message=message):
                await self._passing(self._draft(message), "a draft of the first message")
            case SetStatus(status=status):
                await self._passing(self._status(status), "the loading status")
            case ShowProgress(progress=view):
                if self.progress is not None:
                    self.progress.show(view)  # sent by its own task: never holds up the run
            case _:
                assert_never(effect)

    async def _passing(self, step: Awaitable[None], what: str) -> None:
        """A step whose failure the next one makes good: logged, never reported in-thread."""
        try:
            await step
        except SLACK_FAILURES as exc:
            ts = self.thread_ts
            log.warning("could not show %s in run thread %s: %s", what, ts, describe(exc))

    async def _post(
        self,
        messages: tuple[blocks.OutboundMessage, ...],
        *,
        what: str,
        part: str,
        closes_run: bool,
    ) -> None:
        lost: list[blocks.OutboundMessage] = []
        error = ""
        for number, message in enumerate(messages, start=1):
            mark = closes_run and number == len(messages) and self.run_id is not None
            if f"{part}.{number}" in self._posted_before:
                continue  # posted before the run was resumed
            try:
                refused = await self._poster.post_or_refusal(
                    self.channel,
                    message,
                    thread_ts=self.thread_ts,
                    metadata=footer_metadata(self.run_id) if mark and self.run_id else None,
                    tag=self._tag(f"{part}.{number}"),
                )
                if refused is not None:
                    lost, error = lost + refused[0], refused[1]
            except SLACK_FAILURES as exc:
                # Not answered even after the retries (and, tagged, not found in the thread).
                log.error(
                    "could not post %s in run thread %s: %s", what, self.thread_ts, describe(exc)
                )
                self._unreachable(what)
        if lost:
            await self._report_lost(what, error, lost)

    def _update_top(self, message: blocks.OutboundMessage, *, informational: bool) -> None:
        """Queue the edit; its outcome is looked at when the run ends (`_settle_top`)."""
        self._last_update = time.monotonic()
        metadata = None
        if self.run_id is not None:
            metadata = run_metadata(self.run_id, self.state.strategy)
        queue = self._poster.offer_update if informational else self._poster.enqueue_update
        update = queue(self.channel, self.top_ts, message, metadata=metadata, what=TOP)
        if update is not None:
            self._top_update, self._top_message = update, message

    async def _settle_top(self) -> None:
        """Wait for the first message's last edit; report it if Slack refused it."""
        update, message = self._top_update, self._top_message
        if update is None or message is None:
            return
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Shutting down (the run was cancelled): the edit stays queued for the poster's
            # close to send or name, and the drain is not held up by the queue.
            return
        try:
            # Shielded: a run cancelled while waiting leaves the edit queued, and the
            # scheduler still sends it (or names it at shutdown).
            await asyncio.shield(update)
        except SlackApiError as exc:
            await self._report_lost("the update of the first message", slack_error(exc), [message])
        except SLACK_FAILURES as exc:
            log.error("could not update run thread %s: %s", self.thread_ts, describe(exc))
            self._unreachable(TOP)

    def _tag(self, part: str) -> Tag | None:
        return None if self.run_id is None else Tag(self.run_id, part)

    def _unreachable(self, what: str) -> None:
        if what not in self.unreachable:
            self.unreachable.append(what)

    async def _report_unreachable(self) -> None:
        """Once the run has ended: name what Slack could not be reached for, if anything."""
        if not self.unreachable:
            return
        notice = blocks.unreachable_message(list(self.unreachable))
        try:
            await self._poster.post(
                self.channel, notice, thread_ts=self.thread_ts, tag=self._tag("unreachable.1")
            )
        except (Undelivered, *SLACK_FAILURES) as exc:
            log.error("could not say so in run thread %s: %s", self.thread_ts, describe(exc))

    async def _report_lost(self, what: str, error: str, lost: list[blocks.OutboundMessage]) -> None:
        await self._poster.report_refused(
            self.channel, self.thread_ts, what=what, error=error, lost=lost
        )

    async def _draft(self, message: blocks.OutboundMessage) -> None:
        if time.monotonic() - self._last_update < self._draft_interval_s:
            return  # a newer draft, or the final strategy, will come
        what = "a draft of the first message"
        if self._poster.offer_update(self.channel, self.top_ts, message, what=what) is not None:
            self._last_update = time.monotonic()
            self.drafts_shown += 1

    async def _restore_status(self) -> None:
        """Set the loading status again after the progress message's reply cleared it."""
        if self._status_now is not None:
            await self._passing(self._status(self._status_now), "the loading status")

    async def suspend(self) -> None:
        """The run is suspended for a restart (it resumes there): its first message says it
        is paused (queued, for the poster's close to send), the progress task stops, and
        nothing more is said until the run resumes."""
        if not self._fenced and not self.state.over:
            self._update_top(top(self.state, blocks.paused_status()).message, informational=False)
        self._fenced = True
        if self.progress is not None:
            await self.progress.abandon()

    def fence(self) -> None:
        """Another instance has the run now: this renderer performs nothing more."""
        self._fenced = True
        self.posted.set()
        if self.progress is not None:
            self.progress.stop_now()

    async def abandon(self) -> None:
        """The run is over without a word to the renderer (cancelled before it could say
        how it ended): its progress task is stopped and awaited, not left waiting."""
        if self.progress is not None:
            await self.progress.abandon()

    async def _close_progress(self) -> None:
        if self.progress is not None:
            await self.progress.close()

    async def _status(self, status: blocks.ThreadStatus | None) -> None:
        self._status_now = status
        text, loading = (status.status, status.loading_messages) if status else ("", ())
        await self._poster.set_status(self.channel, self.thread_ts, text, loading)

    async def bug(self) -> None:
        """The run died of a bug in our code: say so in the thread instead of going quiet."""
        problem = "an internal error stopped this run; it has been logged for the operators"
        await self._perform(Post((blocks.error_message(problem),), "the failure notice", "bug"))
        self.posted.set()
        self.state = replace(self.state, over=True)
        await self._perform(top(self.state, blocks.failed_status(problem)))
        await self._perform(SetStatus(None))
        for effect in abandoned(self.state, problem):
            await self._perform(effect)
        await self._close_progress()
        await self._settle_top()
        await self._report_unreachable()
