"""A run's thread, opened: its first message, posted once, or the reason it could not be.

The first message says the run is planning, with a Stop button; it is tagged with the run's
id, so a first message whose answer was lost is found, not posted twice. A channel the bot
is not in is joined when public, or explained to the asker. A question too long for one
message continues in the thread. A run whose first message could not be posted never
starts: its ledger row is closed (no reservation is left held) and nothing was spent.
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError

import blocks
from bot.ledger import RunLedger
from bot.settings import Settings
from bot.slack.admission import not_started
from bot.slack.poster import SLACK_FAILURES, Poster, Tag, describe, slack_error
from bot.slack.requests import RunRequest
from bot.slack.threads import run_metadata

log = logging.getLogger(__name__)


class ChannelUnavailable(Exception):
    """The bot cannot post in the command's channel; its message is Slack's code for why."""


class Opening:
    """Opens the threads of the runs of one process."""

    def __init__(self, *, ledger: RunLedger, poster: Poster, settings: Settings) -> None:
        self._ledger = ledger
        self._poster = poster
        self._settings = settings

    async def open(self, request: RunRequest, run_id: str) -> str | blocks.OutboundMessage:
        """The thread's first message (its `ts`), or the reply saying why it was not posted."""
        try:
            top_ts = await self._post_first(request, run_id)
        except ChannelUnavailable as problem:
            not_started(request, run_id, "not in channel", str(problem))
            await self._ledger.finish_run(
                run_id, "failed", elapsed_s=0.0, error=f"cannot post in channel: {problem}"
            )
            return blocks.channel_unavailable_message(error=str(problem))
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise  # a shutdown: the step runs again after the restart
            not_started(request, run_id, "Slack API error", describe(exc))
            # No run row may stay `running` (and holding budget) for a run that never began.
            await self._ledger.finish_run(
                run_id, "failed", elapsed_s=0.0, error="the first message could not be posted"
            )
            return blocks.run_not_started_message()
        await self._ledger.set_thread(run_id, request.channel_id, request.thread_ts or top_ts)
        return top_ts

    async def _post_first(self, request: RunRequest, run_id: str) -> str:
        """Post the run's first message (in `request.thread_ts` when set); returns its ts."""
        status = blocks.status_message(
            asker_id=request.user_id,
            question=request.question,
            status=blocks.planning_status(self._settings.strategy_model),
            stop_run_id=run_id,
            web_link=self._settings.run_page_url(run_id),
        )
        mark = run_metadata(run_id, None)
        where = request.thread_ts
        # A first message whose answer was lost is found by its tag, not posted twice.
        tag = Tag(run_id, "top.1")
        try:
            top_ts = await self._poster.post(
                request.channel_id, status, thread_ts=where, metadata=mark, tag=tag
            )
        except SlackApiError as exc:
            if slack_error(exc) != "not_in_channel" or not await self._join(request.channel_id):
                raise ChannelUnavailable(slack_error(exc)) from exc
            top_ts = await self._poster.post(
                request.channel_id, status, thread_ts=where, metadata=mark, tag=tag
            )
        # A question too long for the first message continues in its thread, before the plan.
        rest = blocks.status_overflow_messages(asker_id=request.user_id, question=request.question)
        try:
            for number, message in enumerate(rest, start=1):
                await self._poster.post(
                    request.channel_id,
                    message,
                    thread_ts=where or top_ts,
                    tag=Tag(run_id, f"question-rest.{number}"),
                )
        except BaseException:
            # The run will not start: the first message must not stay "⏳ planning" with a
            # Stop button that stops nothing.
            await self._close_top(request, top_ts)
            raise
        return top_ts

    async def _close_top(self, request: RunRequest, top_ts: str) -> None:
        problem = "the question could not be posted in full, so the run did not start"
        message = blocks.status_message(
            asker_id=request.user_id,
            question=request.question,
            status=blocks.failed_status(f"{problem}; nothing was spent"),
        )
        try:
            await self._poster.update(request.channel_id, top_ts, message)
        except SLACK_FAILURES as exc:
            log.warning(
                "could not close the first message of a run that did not start: %s", describe(exc)
            )

    async def _join(self, channel_id: str) -> bool:
        try:
            await self._poster.client.conversations_join(channel=channel_id)
        except SlackApiError as exc:
            log.info("could not join %s: %s", channel_id, slack_error(exc))
            return False
        return True
