"""The message shortcut "Orchestrate this thread": a discussion becomes a run in its thread.

Picked from a message's menu, it acknowledges at once (Slack gives 3 s), then hands the
thread to `Conversations`: a discussion is planned with the whole thread as context; in a
run's thread it re-plans with what the team said since. A thread the bot cannot read (a
private channel it is not in) is answered through the payload's `response_url`, which works
where the bot cannot post. Slack never retries an interactive payload, but a captured signed
one can be sent again within the signature's five minutes: the request's workflow id is
derived from its `trigger_id`, so a second delivery is acknowledged and starts nothing.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.conversations import Request
from bot.slack.deps import Services
from bot.slack.replies import private_reply
from bot.slack.threads import Me

CALLBACK_ID = "orchestrate_thread"  # manifest.yml: features.shortcuts
SHORTCUT_QUESTION = "Turn this thread into a plan."


def register(app: AsyncApp, services: Services) -> None:
    @app.shortcut(CALLBACK_ID)
    async def on_shortcut(
        ack: AsyncAck,
        shortcut: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        message = shortcut.get("message") or {}
        root = str(message.get("thread_ts") or shortcut["message_ts"])
        request = Request(
            team_id=str((shortcut.get("team") or {}).get("id") or context.team_id or ""),
            channel=str(shortcut["channel"]["id"]),
            user_id=str(shortcut["user"]["id"]),
            text=SHORTCUT_QUESTION,
            root_ts=root,
            before_ts=None,
            respond=private_reply(respond, client, shortcut),
            replan=True,
            delivery=f"shortcut:{shortcut['trigger_id']}" if shortcut.get("trigger_id") else None,
            arrived_ts=str(shortcut.get("action_ts") or "") or None,
        )
        services.conversations.accept(request, Me(context.bot_user_id or "", context.bot_id))
