"""The posting shell around the thread fold: pipeline events in, Slack messages out.

`ThreadRenderer` is the `emit` target for one run (besides the ledger). It folds each
event with `bot.slack.thread.advance` and performs the effects in order. The run's first
message is the thread's root for `/orchestrate`, or a reply when the run answers inside an
existing thread (a mention, a re-plan); it carries the run's `orchestrate_run` mark, and the
message that closes the run carries its `orchestrate_footer` mark (`bot.slack.threads`). A
Slack failure while performing one effect is logged and the rest go on: the ledger still
records every call, and one lost message must not cost the rest of the thread.
"""

from __future__ import annotations

import logging
from typing import assert_never

import blocks
from bot.core.events import Event
from bot.slack.poster import SLACK_FAILURES, Poster, describe
from bot.slack.thread import Effect, Post, ThreadState, UpdateTop, advance, top
from bot.slack.threads import footer_metadata, run_metadata

log = logging.getLogger(__name__)


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
    ) -> None:
        self._poster = poster
        self.channel = channel
        self.thread_ts = thread_ts
        self.top_ts = top_ts or thread_ts
        self.run_id = run_id
        self.state = ThreadState(asker_id=asker_id, question=question)

    async def __call__(self, event: Event) -> None:
        self.state, effects = advance(self.state, event)
        for effect in effects:
            await self._perform(effect)

    async def _perform(self, effect: Effect) -> None:
        try:
            match effect:
                case Post(messages=messages, closes_run=closes_run):
                    await self._post(messages, closes_run=closes_run)
                case UpdateTop(message=message):
                    metadata = None
                    if self.run_id is not None:
                        metadata = run_metadata(self.run_id, self.state.strategy)
                    await self._poster.update(self.channel, self.top_ts, message, metadata=metadata)
                case _:
                    assert_never(effect)
        except SLACK_FAILURES as exc:
            what = effect.what if isinstance(effect, Post) else "the top message"
            log.error("could not post %s in run thread %s: %s", what, self.thread_ts, describe(exc))

    async def _post(
        self, messages: tuple[blocks.OutboundMessage, ...], *, closes_run: bool
    ) -> None:
        for number, message in enumerate(messages, start=1):
            last = number == len(messages)
            mark = closes_run and last and self.run_id is not None
            await self._poster.post(
                self.channel,
                message,
                thread_ts=self.thread_ts,
                metadata=footer_metadata(self.run_id) if mark and self.run_id else None,
            )

    async def bug(self) -> None:
        """The run died of a bug in our code: say so in the thread instead of going quiet."""
        problem = "an internal error stopped this run; it has been logged for the operators"
        await self._perform(Post((blocks.error_message(problem),), "the failure notice"))
        await self._perform(top(self.state, blocks.failed_status(problem)))
