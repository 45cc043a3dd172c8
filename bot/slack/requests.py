"""What a run is asked with, and how its asker is answered: shared by the run lifecycle's parts.

A run's id is derived from what Slack sent (`run_id_for`), so the same delivery is the same
run on any instance. `RunRequest` is who asked what, where; `ephemeral` and `PrivateTo` reply
to the asker alone (through Bolt's `respond` where this process has it, by
`chat.postEphemeral` where it does not: a run resumed after a restart, or on another
instance); `quietly` waits for a workflow's end.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import blocks
from bot.slack.poster import SLACK_FAILURES, Poster, describe

log = logging.getLogger(__name__)
Respond = Callable[..., Awaitable[Any]]
# Run ids derived from what Slack sent: the same delivery is the same run, on any instance.
RUN_IDS = uuid.UUID("5f0c7d1e-2a4b-4c8e-9d3f-6b1a0e7c2d94")


def run_id_for(delivery: str | None) -> str:
    """The run id for a delivery (`command:<trigger_id>`, `event:<event_id>`, …); a fresh
    one when Slack sent no id."""
    if not delivery:
        return str(uuid.uuid4())
    return str(uuid.uuid5(RUN_IDS, delivery))


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Who asked what, where. `thread_ts` runs it inside that existing thread (a mention, a
    re-plan) instead of opening one; `thread` is a discussion the strategy builds on
    (`prompts.thread_context`); `parent_run_id` makes it a follow-up of that run."""

    team_id: str
    channel_id: str
    user_id: str
    question: str
    thread_ts: str | None = None
    thread: str | None = None
    parent_run_id: str | None = None


def ephemeral(message: blocks.OutboundMessage) -> dict[str, Any]:
    """Keyword arguments for Bolt's `respond`: a reply only the asker sees."""
    return {"text": message.text, "blocks": list(message.blocks), "response_type": "ephemeral"}


async def tell(respond: Respond, message: blocks.OutboundMessage) -> None:
    await respond(**ephemeral(message))


class PrivateTo:
    """A private reply by `chat.postEphemeral` (for a run resumed where no `respond` is)."""

    def __init__(
        self, poster: Poster, channel: str, user: str, *, thread_ts: str | None = None
    ) -> None:
        self._poster, self._channel, self._user = poster, channel, user
        self._thread_ts = thread_ts

    async def __call__(self, **message: Any) -> None:
        message.pop("response_type", None)
        if self._thread_ts is not None:
            message["thread_ts"] = self._thread_ts
        try:
            await self._poster.client.chat_postEphemeral(
                channel=self._channel, user=self._user, **message
            )
        except SLACK_FAILURES as exc:
            log.warning("could not reply privately to the asker: %s", describe(exc))


async def quietly(handle: Any) -> None:
    """Wait for a workflow's end; how it ended was logged and told where it ended."""
    try:
        await handle.get_result()
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        log.debug("a run's workflow ended without a result: %s", describe(exc))
