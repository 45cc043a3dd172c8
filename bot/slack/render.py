"""The posting shell around the thread fold: pipeline events in, Slack messages out.

`ThreadRenderer` is the `emit` target for one run (besides the ledger). It folds each
event with `bot.slack.thread.advance` and performs the effects in order. A Slack failure
while performing one effect is logged and the rest go on: the ledger still records every
call, and one lost message must not cost the rest of the thread.
"""

from __future__ import annotations

import logging
from typing import assert_never

import blocks
from bot.core.events import Event
from bot.slack.poster import SLACK_FAILURES, Poster, describe
from bot.slack.thread import Effect, Post, ThreadState, UpdateTop, advance, top

log = logging.getLogger(__name__)


class ThreadRenderer:
    """Renders one run's events into its channel thread."""

    def __init__(
        self, poster: Poster, *, channel: str, thread_ts: str, asker_id: str, question: str
    ) -> None:
        self._poster = poster
        self.channel = channel
        self.thread_ts = thread_ts
        self.state = ThreadState(asker_id=asker_id, question=question)

    async def __call__(self, event: Event) -> None:
        self.state, effects = advance(self.state, event)
        for effect in effects:
            await self._perform(effect)

    async def _perform(self, effect: Effect) -> None:
        try:
            match effect:
                case Post(messages=messages):
                    await self._poster.post_all(self.channel, messages, thread_ts=self.thread_ts)
                case UpdateTop(message=message):
                    await self._poster.update(self.channel, self.thread_ts, message)
                case _:
                    assert_never(effect)
        except SLACK_FAILURES as exc:
            what = effect.what if isinstance(effect, Post) else "the top message"
            log.error("could not post %s in run thread %s: %s", what, self.thread_ts, describe(exc))

    async def bug(self) -> None:
        """The run died of a bug in our code: say so in the thread instead of going quiet."""
        problem = "an internal error stopped this run; it has been logged for the operators"
        await self._perform(Post((blocks.error_message(problem),), "the failure notice"))
        await self._perform(top(self.state, blocks.failed_status(problem)))
