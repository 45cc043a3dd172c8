"""`@orchestrate` mentions: a question starts a run, a run's thread gets a follow-up.

A mention is never answered when a bot wrote it (Bolt already drops the bot's own events;
another app's bot carries `bot_id`), so two bots cannot talk each other into a loop. Bolt
does not de-duplicate Events API retries (Slack resends an event it thinks was not
acknowledged, with the same `event_id`, possibly to another instance): a mention's answer,
the help text for a bare one included, is a workflow whose id is derived from its `event_id`
(`bot.slack.conversations`), so a replay answers nothing twice, on any instance. Plain
thread replies without a mention are not answered: the bot speaks when it is asked. What the
mention asks is handed to
`bot.slack.conversations` (whose admission checks the admins' channel allow-list); a bare
`@orchestrate` in a channel gets the help text, in the thread where it is allowed, and
elsewhere only the mentioner is told, privately, the channels where the bot works.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.slack.conversations import Request
from bot.slack.deps import Services
from bot.slack.poster import SLACK_FAILURES, describe
from bot.slack.requests import Respond
from bot.slack.threads import Me, mention_request

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_mention")
    async def on_mention(
        body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if event.get("bot_id") or not event.get("user"):
            return  # another app's bot (or a message without a person): never answered
        me = Me(context.bot_user_id or "", context.bot_id)
        text = mention_request(str(event.get("text") or ""), bot_user_id=me.user_id)
        root = str(event.get("thread_ts") or event["ts"])
        team_id = str(body.get("team_id") or event.get("team") or "")
        respond = _ephemeral(services, channel=event["channel"], user=event["user"], ts=root)
        request = Request(
            team_id=team_id,
            channel=str(event["channel"]),
            user_id=str(event["user"]),
            text=text,
            root_ts=root,
            before_ts=str(event["ts"]),
            respond=respond,
            delivery=f"event:{body['event_id']}" if body.get("event_id") else None,
            arrived_ts=str(event["ts"]),
            hint=not text and root == event["ts"],  # a bare mention in a channel: the help
        )
        services.conversations.accept(request, me)


def _ephemeral(services: Services, *, channel: str, user: str, ts: str) -> Respond:
    """Tell the person who mentioned the bot, and only them, in the thread."""

    async def respond(**message: Any) -> None:
        try:
            await services.client.chat_postEphemeral(
                channel=channel,
                user=user,
                thread_ts=ts,
                text=message["text"],
                blocks=message.get("blocks"),
            )
        except SLACK_FAILURES as exc:
            log.warning("could not answer %s privately in %s: %s", user, ts, describe(exc))

    return respond
