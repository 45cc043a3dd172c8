"""What Slack sends to an app, built from the sandbox workspace: slash command payloads,
Events API callbacks (`app_mention` events built from the message that mentions the bot,
with `thread_ts` and `parent_user_id` in a thread and `bot_id` when a bot wrote it), message
shortcut (`message_action`) and button (`block_actions`) payloads, the v0 request signature
and the signed POST used in HTTP mode.

The same slash command payload travels form-encoded over HTTP and as a JSON object inside a
Socket Mode envelope, as it does from Slack. `channel_name` follows Slack's quirk of reading
`privategroup` for private channels and `directmessage` for DMs.

Text a person typed never reaches an app as typed: Slack sends `&`, `<` and `>` as `&amp;`,
`&lt;` and `&gt;` (slack-ruby-bot#237), so that a literal `<` cannot be confused with its own
markup, and in messages it turns `@name` into `<@U…>` and a bare URL into `<https://…>`.
`message_text` does that for events; `command_text` for slash commands, where the mention
and link markup follows the command's `should_escape` in manifest.yml (the entity encoding
applies either way: Slack documents no exception, so the sandbox takes the stricter case).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.sandbox.slack.workspace import Channel, Message, Workspace

VERIFICATION_TOKEN = "sandbox-verification-token"
_trigger_counter = itertools.count(1)
_event_counter = itertools.count(1)


_AT_NAME = re.compile(r"(?<![\w@<|])@([a-z0-9][a-z0-9._-]*)", re.IGNORECASE)
_HASH_NAME = re.compile(r"(?<![\w#<|&])#([a-z0-9][a-z0-9_-]*)", re.IGNORECASE)
_BARE_URL = re.compile(r"(?<![\w<|/])(?:https?|mailto):[^\s]+?(?=[.,;:!?)]*(?:\s|$|&lt;|&gt;))")


def entity_encode(typed: str) -> str:
    """`&`, `<`, `>` as Slack sends them (`&` first, so the entities are not encoded twice)."""
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message_text(ws: Workspace, typed: str) -> str:
    """A typed message as an event carries it: entities, `<@U…>` mentions, `<url>` links."""
    return _link_urls(_mention_users(ws, entity_encode(typed), with_name=False))


def command_text(ws: Workspace, typed: str, *, should_escape: bool) -> str:
    """Slash command text: entities always; with `should_escape`, mentions and links too."""
    text = entity_encode(typed)
    if not should_escape:
        return text
    return _link_urls(_mention_channels(ws, _mention_users(ws, text, with_name=True)))


def _mention_users(ws: Workspace, text: str, *, with_name: bool) -> str:
    by_name = {user.name.lower(): user for user in ws.users.values()}

    def replace(match: re.Match[str]) -> str:
        user = by_name.get(match.group(1).lower())
        if user is None:
            return match.group(0)
        return f"<@{user.id}|{user.name}>" if with_name else f"<@{user.id}>"

    return _AT_NAME.sub(replace, text)


def _mention_channels(ws: Workspace, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        channel = ws.channel_named(match.group(1))
        return f"<#{channel.id}|{channel.name}>" if channel else match.group(0)

    return _HASH_NAME.sub(replace, text)


def _link_urls(text: str) -> str:
    return _BARE_URL.sub(lambda match: f"<{match.group(0)}>", text)


def channel_name(channel: Channel) -> str:
    if channel.is_im:
        return "directmessage"
    return "privategroup" if channel.is_private else channel.name


def slash_command_payload(
    ws: Workspace,
    *,
    text: str,
    user_id: str,
    channel_id: str,
    command: str,
    response_url: str,
    should_escape: bool = False,
) -> dict[str, str]:
    """The fields Slack sends for a slash command, all strings as in the form body.

    `text` is what the person typed; the payload carries it the way Slack sends it.
    """
    channel = ws.channels.get(channel_id)
    if channel is None or user_id not in ws.users:
        raise ValueError(f"no such channel {channel_id!r} or user {user_id!r} in the sandbox")
    if user_id not in channel.members:
        raise ValueError(f"{user_id} cannot type a command in {channel_id}: not a member")
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "team_domain": ws.domain,
        "channel_id": channel.id,
        "channel_name": channel_name(channel),
        "user_id": user_id,
        "user_name": ws.users[user_id].name,
        "command": command,
        "text": command_text(ws, text, should_escape=should_escape),
        "api_app_id": ws.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{next(_trigger_counter)}.{int(time.time())}.{secrets.token_hex(16)}",
    }


def mention_event(ws: Workspace, message: Message) -> dict[str, Any]:
    """The `app_mention` event for `message`, which must mention the bot in a channel the bot
    is in (Slack sends no event otherwise)."""
    channel = ws.channels[message.channel]
    if ws.bot_user_id not in channel.members:
        raise ValueError(f"Slack sends no app_mention from {channel.id}: the bot is not in it")
    if f"<@{ws.bot_user_id}>" not in message.text:
        raise ValueError("the message does not mention the bot")
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": message.user,
        "text": message.text,
        "ts": message.ts,
        "team": ws.team_id,
        "channel": message.channel,
        "event_ts": message.ts,
    }
    if message.bot_id:
        event.update(bot_id=message.bot_id, app_id=message.app_id)
        event["bot_profile"] = message.to_api(ws.team_id)["bot_profile"]
    else:
        event["client_msg_id"] = secrets.token_hex(16)
    if message.is_reply and message.thread_ts is not None:
        parent = ws.find(message.channel, message.thread_ts)
        event["thread_ts"] = message.thread_ts
        event["parent_user_id"] = parent.user if parent else ""
    return event


def message_action_payload(
    ws: Workspace, message: Message, *, user_id: str, callback_id: str, response_url: str
) -> dict[str, Any]:
    """A message shortcut used by `user_id` on `message`: the whole message rides along."""
    channel = ws.channels[message.channel]
    if user_id not in channel.members:
        raise ValueError(f"{user_id} cannot see messages in {channel.id}: not a member")
    user = ws.users[user_id]
    return {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": f"{time.time():.6f}",
        "team": {"id": ws.team_id, "domain": ws.domain},
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": ws.team_id},
        "channel": {"id": channel.id, "name": channel_name(channel)},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": f"{next(_trigger_counter)}.{int(time.time())}.{secrets.token_hex(16)}",
        "response_url": response_url,
        "message_ts": message.ts,
        "message": message.to_api(ws.team_id),
    }


def event_callback(ws: Workspace, event: dict[str, Any]) -> dict[str, Any]:
    """An Events API `event_callback` wrapper around `event`, as Slack delivers it."""
    now = int(time.time())
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "context_team_id": ws.team_id,
        "context_enterprise_id": None,
        "api_app_id": ws.app_id,
        "event": {"event_ts": f"{time.time():.6f}", **event},
        "type": "event_callback",
        "event_id": f"Ev0SANDBOX{next(_event_counter):06d}",
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": ws.team_id,
                "user_id": ws.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{secrets.token_hex(12)}",
    }


def form_body(payload: dict[str, str]) -> str:
    return urlencode(payload)


def block_actions_on_message(
    ws: Workspace,
    *,
    user_id: str,
    message: Message,
    block: dict[str, Any],
    action: dict[str, Any],
    response_url: str,
    trigger_id: str,
) -> dict[str, Any]:
    """What Slack sends when `user_id` uses `action` (an element of `block`) on `message`."""
    user = ws.users[user_id]
    channel = ws.channels[message.channel]
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": channel.id,
        "is_ephemeral": False,
    }
    if message.thread_ts:
        container["thread_ts"] = message.thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": ws.team_id},
        "api_app_id": ws.app_id,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id,
        "team": {"id": ws.team_id, "domain": ws.domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel.id, "name": channel_name(channel)},
        "message": message.to_api(ws.team_id),
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                **action,
                "block_id": block.get("block_id", ""),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def clicked(element: dict[str, Any], choice: str | None) -> dict[str, Any]:
    """The `actions[0]` Slack reports for a click on `element` (without block_id and ts).

    A button reports its own value; feedback buttons report the chosen button's value and
    text (`choice` is "positive" or "negative").
    """
    kind = element.get("type")
    if kind == "feedback_buttons":
        if choice not in ("positive", "negative"):
            raise ValueError("feedback_buttons need choice='positive' or 'negative'")
        button = element[f"{choice}_button"]
        return {
            "type": kind,
            "action_id": element.get("action_id", ""),
            "value": button["value"],
            "text": button["text"],
        }
    if kind in ("button", "icon_button"):
        action = {"type": kind, "action_id": element.get("action_id", ""), "text": element["text"]}
        if "value" in element:
            action["value"] = element["value"]
        if "style" in element:
            action["style"] = element["style"]
        return action
    raise ValueError(f"the sandbox cannot click a {kind} element")


def signature_headers(
    body: str,
    *,
    secret: str,
    timestamp: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, str]:
    """Headers Slack sends with a request: v0 HMAC-SHA256 of f"v0:{ts}:{body}"."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


async def post_signed(url: str, body: str, headers: dict[str, str]) -> tuple[int, str, str, float]:
    """POST to the app as Slack does; (status, body, content type, seconds taken)."""
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body.encode(), headers=headers) as response,
    ):
        text = await response.text()
        return response.status, text, response.content_type, time.monotonic() - started


def command_response(body: str, content_type: str) -> dict[str, Any]:
    """What Slack shows for an HTTP command response: JSON fields, or plain text as text."""
    if content_type == "application/json":
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {"text": body} if body.strip() else {}
