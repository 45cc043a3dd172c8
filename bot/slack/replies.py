"""Private replies to the person who acted, that reach them even when the response URL won't.

A slash command's or shortcut's `response_url` takes 5 posts within 30 minutes; after that
Slack answers 404 (`used_url`, `expired_url`), and Bolt's `respond` returns that answer
instead of raising. `PrivateReply` wraps `respond`: a reply the URL refuses (or that never
gets an answer) is logged with Slack's reason and sent with `chat.postEphemeral` instead,
which works wherever the bot may post. Nothing here logs the URL itself: it is a credential
for the conversation.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.poster import SLACK_FAILURES, describe

log = logging.getLogger(__name__)


class PrivateReply:
    """Call like Bolt's `respond`: `await reply(text=..., blocks=..., response_type=...)`."""

    def __init__(
        self, respond: AsyncRespond, client: AsyncWebClient, *, channel_id: str, user_id: str
    ) -> None:
        self._respond = respond
        self._client = client
        self.channel_id = channel_id
        self.user_id = user_id

    async def __call__(self, **message: Any) -> None:
        problem = await self._through_response_url(message)
        if problem is None:
            return
        log.warning(
            "the response URL refused a reply to %s (%s); sending it with chat.postEphemeral",
            self.user_id,
            problem,
        )
        try:
            await self._client.chat_postEphemeral(
                channel=self.channel_id,
                user=self.user_id,
                text=str(message.get("text") or ""),
                blocks=message.get("blocks"),
            )
        except SLACK_FAILURES as exc:
            log.error("could not reply to %s at all: %s", self.user_id, describe(exc))

    async def _through_response_url(self, message: dict[str, Any]) -> str | None:
        """None when the response URL took the reply, else why it did not."""
        try:
            response = await self._respond(**message)
        except (*SLACK_FAILURES, ValueError) as exc:  # ValueError: Bolt had no response URL
            return describe(exc)
        if response.status_code == 200:
            return None
        return f"HTTP {response.status_code} {_error(response.body)}".strip()


def _error(body: str) -> str:
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, TypeError):
        return ""
    return str(parsed.get("error", "")) if isinstance(parsed, dict) else ""


def private_reply(
    respond: AsyncRespond, client: AsyncWebClient, payload: dict[str, Any]
) -> PrivateReply:
    """The reply channel for a slash command or shortcut payload."""
    channel = payload.get("channel_id") or (payload.get("channel") or {}).get("id") or ""
    user = payload.get("user_id") or (payload.get("user") or {}).get("id") or ""
    return PrivateReply(respond, client, channel_id=str(channel), user_id=str(user))
