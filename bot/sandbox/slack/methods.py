"""The Slack sandbox's methods outside `chat.*`: identity, people, conversations, App Home,
assistant status and the Socket Mode connection URL.

`assistant.threads.setStatus` takes a thread's parent `ts` (`invalid_thread_ts` otherwise)
and at most 10 `loading_messages`.

Each answers as Slack does, including its refusals: `user_not_found`, `channel_not_found`
for private channels the bot is not in, `missing_scope` (with `needed` and `provided`) when
the installation lacks a scope, `method_not_supported_for_channel_type` for joining private
conversations, `already_in_channel` as a warning, `hash_conflict` and `invalid_arguments` for
App Home views over 100 blocks or 250 kB, and `not_allowed_token_type` when a bot token asks
for a Socket Mode URL. `conversations.replies` pages a thread with an opaque cursor (the
parent first on the first page only), returns message metadata only when asked
(`include_all_metadata`), and refuses threads the bot cannot read: `channel_not_found` for a
private channel it is not in, `not_in_channel` for a public one, `thread_not_found` for an
unknown `ts`, `invalid_cursor`, and `missing_scope` without the conversation type's
`*:history` scope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from bot.sandbox.slack.blocks import VIEW_MAX_BLOCKS, block_errors, error
from bot.sandbox.slack.chat import visible_channel
from bot.sandbox.slack.web import ApiError, CallContext, Method, WebApi, invalid_arguments
from bot.sandbox.slack.workspace import Channel, HomeView, Message, Status, Workspace

VIEW_MAX_BYTES = 250_000
REPLIES_MAX_LIMIT = 1000
MAX_LOADING_MESSAGES = 10


class OtherMethods:
    """Handlers for auth/users/conversations/views/assistant/apps on one workspace."""

    def __init__(self, ws: Workspace, api: WebApi, *, open_socket_url: Callable[[], str]) -> None:
        self.ws = ws
        self.api = api
        self.open_socket_url = open_socket_url

    def register(self) -> None:
        self.api.methods.update(
            {
                "auth.test": Method(self.auth_test),
                "users.info": Method(self.users_info),
                "users.list": Method(self.users_list),
                "conversations.info": Method(self.conversations_info),
                "conversations.members": Method(self.conversations_members),
                "conversations.join": Method(self.conversations_join),
                "conversations.open": Method(self.conversations_open),
                "conversations.replies": Method(self.conversations_replies),
                "conversations.history": Method(self.conversations_history),
                "views.publish": Method(self.views_publish),
                "assistant.threads.setStatus": Method(self.set_status),
                "apps.connections.open": Method(self.connections_open, token="app"),
            }
        )

    def auth_test(self, ctx: CallContext) -> dict[str, Any]:
        return {
            "url": f"https://{self.ws.domain}.slack.com/",
            "team": self.ws.team_name,
            "user": self.ws.users[self.ws.bot_user_id].name,
            "team_id": self.ws.team_id,
            "user_id": self.ws.bot_user_id,
            "bot_id": self.ws.bot_id,
            "is_enterprise_install": False,
        }

    def users_info(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("users:read")
        user = self.ws.users.get(ctx.required("user"))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.to_api(self.ws.team_id)}

    def users_list(self, ctx: CallContext) -> dict[str, Any]:
        """Members in id order, paginated with an opaque cursor as Slack does."""
        self.api.need_scope("users:read")
        limit = int(ctx.text("limit") or 200)
        start = int(ctx.text("cursor") or 0) if (ctx.text("cursor") or "0").isdigit() else -1
        if start < 0:
            raise ApiError("invalid_cursor")
        users = sorted(self.ws.users.values(), key=lambda u: u.id)
        page = users[start : start + max(1, min(limit, 1000))]
        following = start + len(page)
        cursor = str(following) if following < len(users) else ""
        return {
            "members": [u.to_api(self.ws.team_id) for u in page],
            "response_metadata": {"next_cursor": cursor},
        }

    def conversations_info(self, ctx: CallContext) -> dict[str, Any]:
        channel = self._by_id(ctx.required("channel"))
        self.api.need_scope(_read_scope(channel))
        channel = visible_channel(self.ws, channel.id)
        return {"channel": channel.to_api(bot_user_id=self.ws.bot_user_id)}

    def conversations_members(self, ctx: CallContext) -> dict[str, Any]:
        """A conversation's members (people and bots), paged like users.list; a private
        channel the bot is not in does not exist for it (`channel_not_found`)."""
        channel = self._by_id(ctx.required("channel"))
        self.api.need_scope(_read_scope(channel))
        channel = visible_channel(self.ws, channel.id)
        members = sorted(channel.members if not channel.is_im else {channel.im_user or ""})
        limit = int(ctx.text("limit") or 100)
        start = int(ctx.text("cursor") or 0) if (ctx.text("cursor") or "0").isdigit() else -1
        if start < 0:
            raise ApiError("invalid_cursor")
        page = members[start : start + max(1, min(limit, 1000))]
        following = start + len(page)
        cursor = str(following) if following < len(members) else ""
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def conversations_join(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("channels:join")
        channel = self._by_id(ctx.required("channel"))
        if not channel.is_public:
            raise ApiError("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise ApiError("is_archived")
        if self.ws.bot_user_id in channel.members:
            ctx.warnings.append("already_in_channel")
        channel.members.add(self.ws.bot_user_id)
        return {"channel": channel.to_api(bot_user_id=self.ws.bot_user_id)}

    def conversations_open(self, ctx: CallContext) -> dict[str, Any]:
        """The bot's DM with one person (`users`), opened on first use as Slack does."""
        self.api.need_scope("im:write")
        users = [u for u in (ctx.text("users") or "").split(",") if u]
        if ctx.text("channel") is None and not users:
            raise ApiError("users_list_not_supplied")
        if len(users) != 1:
            # Group DMs (mpim:write) are not something orchestrate opens.
            raise ApiError("not_supported_in_sandbox")
        if users[0] not in self.ws.users:
            raise ApiError("user_not_found")
        channel = self.ws.im_with(users[0])
        return {"channel": {"id": channel.id}}

    def conversations_replies(self, ctx: CallContext) -> dict[str, Any]:
        """A thread, parent first, oldest first, `limit` messages a page."""
        channel = self._by_id(ctx.required("channel"))
        self.api.need_scope(_history_scope(channel))
        channel = visible_channel(self.ws, channel.id)
        if self.ws.bot_user_id not in channel.members:
            raise ApiError("not_in_channel")
        parent = self._thread_parent(channel, ctx.required("ts"))
        thread = [parent, *self.ws.thread_replies(channel.id, parent.ts)]
        thread = [m for m in thread if _in_range(m, ctx)]
        start = _cursor_start(ctx.text("cursor"), thread)
        limit = max(1, min(int(ctx.text("limit") or REPLIES_MAX_LIMIT), REPLIES_MAX_LIMIT))
        page = thread[start : start + limit]
        following = start + len(page)
        metadata = bool(ctx.flag("include_all_metadata"))
        return {
            "messages": [self._thread_message(m, parent, metadata=metadata) for m in page],
            "has_more": following < len(thread),
            "response_metadata": {
                "next_cursor": _cursor(thread[following]) if following < len(thread) else ""
            },
        }

    def conversations_history(self, ctx: CallContext) -> dict[str, Any]:
        """A conversation's top-level messages, newest first, `limit` a page, within
        `oldest`/`latest`; metadata only with `include_all_metadata`."""
        channel = self._by_id(ctx.required("channel"))
        self.api.need_scope(_history_scope(channel))
        channel = visible_channel(self.ws, channel.id)
        if self.ws.bot_user_id not in channel.members:
            raise ApiError("not_in_channel")
        history = [
            m
            for m in reversed(self.ws.history.get(channel.id, []))
            if not m.is_reply and not m.deleted and _in_range(m, ctx)
        ]
        start = _cursor_start(ctx.text("cursor"), history)
        limit = max(1, min(int(ctx.text("limit") or 100), REPLIES_MAX_LIMIT))
        page = history[start : start + limit]
        following = start + len(page)
        metadata = bool(ctx.flag("include_all_metadata"))
        messages = [m.to_api(self.ws.team_id) for m in page]
        if not metadata:
            for body in messages:
                body.pop("metadata", None)
        more = following < len(history)
        return {
            "messages": messages,
            "has_more": more,
            "response_metadata": {"next_cursor": _cursor(history[following]) if more else ""},
        }

    def _thread_parent(self, channel: Channel, ts: str) -> Message:
        message = self.ws.find(channel.id, ts)
        if message is None:
            raise ApiError("thread_not_found")
        if message.is_reply and message.thread_ts is not None:
            parent = self.ws.find(channel.id, message.thread_ts)
            if parent is None:
                raise ApiError("thread_not_found")
            return parent
        return message

    def _thread_message(
        self, message: Message, parent: Message, *, metadata: bool
    ) -> dict[str, Any]:
        body = message.to_api(self.ws.team_id)
        if not metadata:
            body.pop("metadata", None)
        if message is parent:
            replies = self.ws.thread_replies(parent.channel, parent.ts)
            if replies:
                users = list(dict.fromkeys(r.user for r in replies))
                body.update(
                    thread_ts=parent.ts,
                    reply_count=len(replies),
                    reply_users=users[:5],
                    reply_users_count=len(users),
                    latest_reply=replies[-1].ts,
                )
        else:
            body["parent_user_id"] = parent.user
        return body

    def views_publish(self, ctx: CallContext) -> dict[str, Any]:
        user_id = ctx.required("user_id")
        if user_id not in self.ws.users:
            raise ApiError("user_not_found")
        view = ctx.structured("view", format_error="invalid_arguments")
        _check_home_view(view)
        current = self.ws.home_views.get(user_id)
        expected = ctx.text("hash")
        if expected is not None and current is not None and expected != current.hash:
            raise ApiError("hash_conflict")
        view_id = current.id if current else f"V0{len(self.ws.home_views) + 1:07d}"
        digest = hashlib.sha1(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]
        stored = HomeView(user_id, view, view_id, f"{int(time.time())}.{digest}")
        self.ws.home_views[user_id] = stored
        return {"view": self._view_api(stored)}

    def set_status(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("chat:write")
        channel = visible_channel(self.ws, ctx.required("channel_id"))
        thread_ts = ctx.required("thread_ts")
        if "status" not in ctx.args:
            raise invalid_arguments("[ERROR] missing required field: status")
        parent = self.ws.find(channel.id, thread_ts)
        if parent is None or parent.is_reply:
            raise ApiError("invalid_thread_ts")
        loading = ctx.structured("loading_messages", format_error="invalid_arguments") or []
        if not isinstance(loading, list) or len(loading) > MAX_LOADING_MESSAGES:
            raise invalid_arguments(
                error(f"no more than {MAX_LOADING_MESSAGES} items allowed", "/loading_messages")
            )
        self.ws.statuses.append(
            Status(channel.id, thread_ts, str(ctx.args["status"]), time.monotonic(), list(loading))
        )
        return {}

    def connections_open(self, ctx: CallContext) -> dict[str, Any]:
        return {"url": self.open_socket_url()}

    def _by_id(self, channel_id: str) -> Channel:
        channel = self.ws.channels.get(channel_id)
        if channel is None:
            raise ApiError("channel_not_found")
        return channel

    def _view_api(self, view: HomeView) -> dict[str, Any]:
        return {
            "id": view.id,
            "team_id": self.ws.team_id,
            "type": "home",
            "blocks": view.view.get("blocks", []),
            "private_metadata": view.view.get("private_metadata", ""),
            "callback_id": view.view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": view.hash,
            "title": None,
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "root_view_id": view.id,
            "app_id": self.ws.app_id,
            "external_id": view.view.get("external_id", ""),
            "app_installed_team_id": self.ws.team_id,
            "bot_id": self.ws.bot_id,
        }


def _read_scope(channel: Channel) -> str:
    if channel.is_im:
        return "im:read"
    return "groups:read" if channel.is_private else "channels:read"


def _history_scope(channel: Channel) -> str:
    if channel.is_im:
        return "im:history"
    return "groups:history" if channel.is_private else "channels:history"


def _in_range(message: Message, ctx: CallContext) -> bool:
    """Slack's `oldest`/`latest` window; the ends count only with `inclusive`."""
    ts = float(message.ts)
    oldest, latest = float(ctx.text("oldest") or 0), float(ctx.text("latest") or "inf")
    if ctx.flag("inclusive"):
        return oldest <= ts <= latest
    return oldest < ts < latest


def _cursor(message: Message) -> str:
    return base64.b64encode(f"ts:{message.ts}".encode()).decode()


def _cursor_start(cursor: str | None, thread: list[Message]) -> int:
    """Where a page starts: at the message the cursor names (an opaque string to clients)."""
    if cursor is None:
        return 0
    try:
        ts = base64.b64decode(cursor, validate=True).decode().removeprefix("ts:")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    index = next((i for i, m in enumerate(thread) if m.ts == ts), None)
    if index is None or index == 0:
        raise ApiError("invalid_cursor")
    return index


def _check_home_view(view: Any) -> None:
    if not isinstance(view, dict):
        raise invalid_arguments(error("must be an object", "/view"))
    if view.get("type") != "home":
        raise invalid_arguments(error("must be a valid enum value", "/view/type"))
    errors = block_errors(
        view.get("blocks", []), max_blocks=VIEW_MAX_BLOCKS, pointer="/view/blocks"
    )
    if errors:
        raise invalid_arguments(*errors)
    size = len(json.dumps(view).encode())
    if size > VIEW_MAX_BYTES:
        raise invalid_arguments(
            error(f"view must be at most {VIEW_MAX_BYTES} bytes (got {size})", "/view")
        )
