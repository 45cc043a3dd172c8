"""The Slack sandbox's state: one workspace with its people, conversations and content.

`Workspace.seeded()` builds the workspace every test starts from (see `bot.sandbox.slack` for
the list of users and channels). Everything the app does through the sandbox lands here as
plain dataclasses: messages with their threads, edits and deletions, ephemeral messages, the
streaming state of streamed replies, assistant thread statuses, App Home views and the posts
made to `response_url`s. Message timestamps come from one clock, so `ts` strings are unique
and strictly increasing across the whole workspace, as Slack's are within a channel.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0ORCH"
BOT_NAME = "orchestrate"
# Another app's bot in the same workspace: its messages carry its own bot_id.
OTHER_BOT_USER_ID = "U0HELPER"
OTHER_BOT_ID = "B0HELPER"
OTHER_APP_ID = "A0HELPER"
# Slack clears an assistant status by itself after two minutes without a reply.
STATUS_TTL_S = 120.0

EphemeralSource = Literal["chat.postEphemeral", "ack", "http_response", "response_url", "slack"]


@dataclass(slots=True)
class User:
    id: str
    name: str
    real_name: str
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    is_bot: bool = False
    bot_id: str | None = None
    app_id: str | None = None
    tz: str = "Europe/London"
    tz_label: str = "Greenwich Mean Time"
    tz_offset: int = 0
    deleted: bool = False

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The `user` object of users.info, as Slack shapes it (email needs another scope)."""
        profile: dict[str, Any] = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": "" if self.is_bot else self.name,
            "display_name_normalized": "" if self.is_bot else self.name,
            "team": team_id,
            "image_48": f"https://avatars.sandbox.invalid/{self.id}_48.png",
        }
        if self.is_bot:
            profile.update(
                {"bot_id": self.bot_id, "api_app_id": self.app_id, "always_active": True}
            )
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": self.real_name,
            "tz": self.tz,
            "tz_label": self.tz_label,
            "tz_offset": self.tz_offset,
            "profile": profile,
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": self.is_primary_owner,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1764000000,
        }


@dataclass(slots=True)
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    members: set[str] = field(default_factory=set)
    is_archived: bool = False
    im_user: str | None = None
    created: int = 1764000000

    @property
    def is_public(self) -> bool:
        return not self.is_private and not self.is_im

    def to_api(self, *, bot_user_id: str) -> dict[str, Any]:
        """The `channel` object of conversations.info for the bot's point of view."""
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_im": True,
                "is_org_shared": False,
                "user": self.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_general": self.name == "general",
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_member": bot_user_id in self.members,
            "created": self.created,
            "creator": "U0OWNER",
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }


@dataclass(slots=True)
class StreamState:
    """What makes a message a live stream: Slack ends it once `idle_s` pass without an
    append, and in any case `ttl` seconds after it started (see `live`)."""

    started_at: float
    recipient_user_id: str | None
    recipient_team_id: str | None
    stopped: bool = False
    task_display_mode: str = "timeline"
    idle_s: float = math.inf
    last_active: float = 0.0  # the start, then each append

    def live(self, now: float, ttl: float) -> bool:
        """Still taking appends: not stopped, not idle too long, not past its lifetime."""
        idle = now - max(self.last_active, self.started_at)
        return not self.stopped and now - self.started_at <= ttl and idle <= self.idle_s


@dataclass(slots=True)
class Message:
    channel: str
    ts: str
    user: str
    text: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    reply_broadcast: bool = False
    bot_id: str | None = None
    app_id: str | None = None
    metadata: dict[str, Any] | None = None
    markdown_text: str | None = None
    chunks: list[dict[str, Any]] = field(default_factory=list)
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    mrkdwn: bool | None = None
    edited_ts: str | None = None
    deleted: bool = False
    stream: StreamState | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The message object Slack returns from chat.postMessage and friends."""
        body: dict[str, Any] = {"type": "message", "user": self.user, "ts": self.ts}
        body["text"] = self.text if self.markdown_text is None else self.markdown_text
        body["team"] = team_id
        if self.bot_id:
            body.update({"bot_id": self.bot_id, "app_id": self.app_id})
            body["bot_profile"] = {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": BOT_NAME if self.bot_id == BOT_ID else self.user,
                "deleted": False,
                "team_id": team_id,
            }
        if self.blocks:
            body["blocks"] = self.blocks
        if self.thread_ts:
            body["thread_ts"] = self.thread_ts
        if self.is_reply and self.reply_broadcast:
            body["subtype"] = "thread_broadcast"
        if self.metadata:
            body["metadata"] = self.metadata
        if self.edited_ts:
            body["edited"] = {"user": self.user, "ts": self.edited_ts}
        return body


@dataclass(slots=True)
class Ephemeral:
    """A message only `user` sees; Slack never gives it a thread or keeps it in history."""

    channel: str
    user: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    source: EphemeralSource = "chat.postEphemeral"


@dataclass(slots=True)
class Status:
    """One assistant.threads.setStatus call; an empty `status` clears the indicator."""

    channel: str
    thread_ts: str
    status: str
    at: float
    loading_messages: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HomeView:
    user_id: str
    view: dict[str, Any]
    id: str
    hash: str


@dataclass(slots=True)
class ResponseUrlPost:
    """One POST to a response_url, accepted or refused."""

    url: str
    body: dict[str, Any]
    status: int
    error: str | None = None


class TsClock:
    """Issues Slack `ts` strings: epoch seconds with microseconds, strictly increasing."""

    def __init__(self) -> None:
        self._last_us = 0

    def next(self) -> str:
        now_us = max(int(time.time() * 1_000_000), self._last_us + 1)
        self._last_us = now_us
        seconds, micros = divmod(now_us, 1_000_000)
        return f"{seconds}.{micros:06d}"


@dataclass
class Workspace:
    """One Slack workspace as the bot sees it; tests read and seed it directly."""

    team_id: str = "T0SANDBOX"
    team_name: str = "sandbox"
    domain: str = "sandbox"
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    app_id: str = APP_ID
    users: dict[str, User] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    history: dict[str, list[Message]] = field(default_factory=dict)
    ephemerals: list[Ephemeral] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    home_views: dict[str, HomeView] = field(default_factory=dict)
    response_posts: list[ResponseUrlPost] = field(default_factory=list)
    clock: TsClock = field(default_factory=TsClock)

    @classmethod
    def seeded(cls, team_id: str = "T0SANDBOX") -> Workspace:
        ws = cls(team_id=team_id)
        ws.add_user("U0ADMIN", "ada", "Ada", is_admin=True)
        ws.add_user(
            "U0OWNER", "olive", "Olive", is_admin=True, is_owner=True, is_primary_owner=True
        )
        ws.add_user(
            "U0ALICE",
            "alice",
            "Alice",
            tz="America/New_York",
            tz_label="Eastern Standard Time",
            tz_offset=-18000,
        )
        ws.add_user("U0BOB", "bob", "Bob")
        ws.users[BOT_USER_ID] = User(
            BOT_USER_ID, BOT_NAME, BOT_NAME, is_bot=True, bot_id=BOT_ID, app_id=APP_ID
        )
        ws.users[OTHER_BOT_USER_ID] = User(
            OTHER_BOT_USER_ID, "helper", "helper", is_bot=True, bot_id=OTHER_BOT_ID,
            app_id=OTHER_APP_ID,
        )  # fmt: skip
        humans = {"U0ADMIN", "U0OWNER", "U0ALICE", "U0BOB"}
        ws.add_channel("C0GENERAL", "general", members=humans | {BOT_USER_ID, OTHER_BOT_USER_ID})
        ws.add_channel("C0RANDOM", "random", members=humans)
        ws.add_channel("G0PRIVATE", "secret-plans", is_private=True, members={"U0ADMIN", "U0ALICE"})
        ws.add_channel(
            "G0TEAM", "team-private", is_private=True, members={"U0ALICE", "U0BOB", BOT_USER_ID}
        )
        ws.add_im("D0ALICE", "U0ALICE")
        return ws

    def add_user(self, user_id: str, name: str, real_name: str, **flags: Any) -> User:
        """Add a person; pass `User` fields such as is_admin=True or tz=... as keywords."""
        user = User(user_id, name, real_name, **flags)
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_private: bool = False,
        members: set[str] | None = None,
        is_archived: bool = False,
    ) -> Channel:
        channel = Channel(
            channel_id,
            name,
            is_private=is_private,
            members=set(members or ()),
            is_archived=is_archived,
        )
        self.channels[channel_id] = channel
        self.history.setdefault(channel_id, [])
        return channel

    def add_im(self, channel_id: str, user_id: str) -> Channel:
        """A direct-message conversation between `user_id` and the bot."""
        channel = Channel(
            channel_id, user_id, is_im=True, members={user_id, self.bot_user_id}, im_user=user_id
        )
        self.channels[channel_id] = channel
        self.history.setdefault(channel_id, [])
        return channel

    def im_with(self, user_id: str) -> Channel:
        """The bot's DM with a user, opened on first use as Slack does for `channel=U…`."""
        for channel in self.channels.values():
            if channel.is_im and channel.im_user == user_id:
                return channel
        return self.add_im(f"D0{user_id.removeprefix('U0').removeprefix('U')}", user_id)

    def channel_named(self, name: str) -> Channel | None:
        bare = name.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == bare and not c.is_im), None)

    def find(self, channel_id: str, ts: str) -> Message | None:
        """A live (not deleted) message by channel and ts."""
        for message in self.history.get(channel_id, ()):
            if message.ts == ts and not message.deleted:
                return message
        return None

    def thread_replies(self, channel_id: str, thread_ts: str) -> list[Message]:
        return [
            m
            for m in self.history.get(channel_id, ())
            if m.is_reply and m.thread_ts == thread_ts and not m.deleted
        ]

    def post(self, message: Message) -> Message:
        self.history.setdefault(message.channel, []).append(message)
        return message

    def post_as(
        self, user_id: str, channel_id: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """A person (or another app's bot user) posts a message; `text` is the stored form,
        entity-escaped with mentions as `<@U…>`, as Slack keeps it."""
        user = self.users[user_id]
        return self.post(
            Message(
                channel_id,
                self.clock.next(),
                user_id,
                text=text,
                thread_ts=thread_ts,
                bot_id=user.bot_id,
                app_id=user.app_id,
            )
        )

    def current_status(self, channel_id: str, thread_ts: str) -> str:
        """The assistant status shown now in a thread ("" when none or older than 2 minutes)."""
        for status in reversed(self.statuses):
            if status.channel == channel_id and status.thread_ts == thread_ts:
                fresh = time.monotonic() - status.at < STATUS_TTL_S
                return status.status if fresh else ""
        return ""
