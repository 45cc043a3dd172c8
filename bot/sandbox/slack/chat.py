"""The Slack sandbox's `chat.*` methods: posting, editing, deleting, ephemerals and streams.

Each handler applies the rules the real platform applies, in the error vocabulary it uses:
who may post where (`not_in_channel`, `channel_not_found`, `is_archived`), what a message may
contain (`no_text`, `msg_too_long`, `markdown_text_conflict`, `invalid_blocks` with details,
`msg_blocks_too_long` for too much text across all blocks), threads (`thread_not_found`: a
`thread_ts` must name a live top-level message), which messages may be edited or deleted
(`chat.update`/`chat.delete` take a conversation ID, never a name or a user ID; only the bot's
own messages, `cant_update_message`; none in an archived channel, `is_inactive`; none while it
streams, `streaming_state_conflict`), and streams, which need a thread, name their recipient in
channels, and stop accepting text (`message_not_in_streaming_state`) once `stream_idle_s`
pass without an append, and in any case `stream_ttl_s` after they start. Lengths are
`slack_length` (UTF-8 bytes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.sandbox.slack.blocks import (
    MESSAGE_TEXT_MAX,
    block_errors,
    message_text_length,
    slack_length,
)
from bot.sandbox.slack.chunks import (
    TASKS_MAX,
    chunk_errors,
    chunks_text_length,
    display_mode_errors,
    shown_chunks,
    task_ids,
)
from bot.sandbox.slack.web import ApiError, CallContext, Method, WebApi, invalid_arguments
from bot.sandbox.slack.workspace import (
    Channel,
    Ephemeral,
    Message,
    Status,
    StreamState,
    Workspace,
)

TEXT_MAX = 4000
MARKDOWN_TEXT_MAX = 12000


@dataclass(frozen=True, slots=True)
class Content:
    text: str | None
    blocks: list[dict[str, Any]] | None
    markdown_text: str | None


def invalid_blocks(errors: list[str]) -> ApiError:
    bare = [e.removeprefix("[ERROR] ") for e in errors]
    return ApiError(
        "invalid_blocks", extra={"errors": bare, "response_metadata": {"messages": errors}}
    )


def _refuse_reused_context_actions(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    """Slack's context actions reference: "block_id should be unique for each message and
    each iteration of a message. If a message is updated, use a new block_id." What Slack
    does with a reused one is unpublished; the stricter reading refuses the update."""
    old = {b.get("block_id") for b in before if b.get("block_id")}
    for index, block in enumerate(after):
        if block.get("type") == "context_actions" and block.get("block_id") in old:
            where = f"/blocks/{index}/block_id"
            raise invalid_blocks(
                [f"[ERROR] a block_id must be new when a message is updated [json-pointer:{where}]"]
            )


def parse_blocks(ctx: CallContext) -> list[dict[str, Any]] | None:
    """`blocks` as a list, validated against Slack's message limits; None when absent."""
    if ctx.args.get("blocks") is None:
        return None
    blocks = ctx.structured("blocks", format_error="invalid_blocks_format")
    if not isinstance(blocks, list):
        raise ApiError("invalid_blocks_format")
    errors = block_errors(blocks)
    if errors:
        raise invalid_blocks(errors)
    if message_text_length(blocks) > MESSAGE_TEXT_MAX:
        # Slack says only the code, with no count or pointer (slackapi/bolt-js#2867).
        raise ApiError("msg_blocks_too_long")
    return blocks


def message_content(ctx: CallContext) -> Content:
    """text / blocks / markdown_text with Slack's rules for combining and sizing them."""
    text = ctx.text("text")
    markdown_text = ctx.text("markdown_text")
    blocks = parse_blocks(ctx)
    if markdown_text is not None and (text is not None or blocks):
        raise ApiError("markdown_text_conflict")
    if text is None and not blocks and markdown_text is None and not ctx.args.get("attachments"):
        raise ApiError("no_text")
    if (text and slack_length(text) > TEXT_MAX) or (
        markdown_text and slack_length(markdown_text) > MARKDOWN_TEXT_MAX
    ):
        raise ApiError("msg_too_long")
    return Content(text, blocks, markdown_text)


def resolve_channel(ws: Workspace, value: str | None) -> Channel:
    """A channel ID, a #name, or a user ID (the bot's DM with that person)."""
    if not value:
        raise ApiError("channel_not_found")
    if value in ws.channels:
        return ws.channels[value]
    if value.startswith("U") and value in ws.users:
        return ws.im_with(value)
    named = ws.channel_named(value)
    if named is None:
        raise ApiError("channel_not_found")
    return named


def visible_channel(ws: Workspace, value: str | None) -> Channel:
    """A channel the bot can see: private ones it is not in do not exist for it."""
    channel = resolve_channel(ws, value)
    if not channel.is_public and ws.bot_user_id not in channel.members:
        raise ApiError("channel_not_found")
    return channel


def editable_channel(ws: Workspace, value: str | None) -> Channel:
    """The channel of an edit or deletion: a conversation ID only, as Slack requires.

    `chat.postMessage` resolves `#name` and a user ID (the bot's DM); `chat.update` and
    `chat.delete` do not, and answer `channel_not_found` (slackapi/slack-github-action#125:
    a name that posted fine could not update). A channel the bot cannot see does not exist.
    """
    if not value or value not in ws.channels:
        raise ApiError("channel_not_found")
    channel = visible_channel(ws, value)
    if channel.is_archived:
        raise ApiError("is_inactive")
    return channel


def postable_channel(ws: Workspace, api: WebApi, value: str | None) -> Channel:
    """A channel the bot may post in: a member, or a public one with chat:write.public."""
    channel = visible_channel(ws, value)
    if channel.is_archived:
        raise ApiError("is_archived")
    if ws.bot_user_id not in channel.members and "chat:write.public" not in api.scopes:
        raise ApiError("not_in_channel")
    return channel


def message_metadata(ctx: CallContext) -> dict[str, Any] | None:
    """A message's `metadata`: an `event_type` string and a flat `event_payload` object (its
    values strings, numbers or booleans), else `invalid_metadata_format`."""
    metadata = ctx.structured("metadata", format_error="invalid_metadata_format")
    if metadata is None:
        return None
    payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not isinstance(payload, dict)
        or not all(isinstance(v, str | int | float | bool) for v in payload.values())
    ):
        raise ApiError("invalid_metadata_format")
    return metadata


class ChatMethods:
    """Handlers for chat.* on one workspace; `register` adds them to a `WebApi`."""

    def __init__(
        self, ws: Workspace, api: WebApi, *, stream_ttl_s: float, stream_idle_s: float
    ) -> None:
        self.ws = ws
        self.api = api
        self.stream_ttl_s = stream_ttl_s
        self.stream_idle_s = stream_idle_s

    def register(self) -> None:
        self.api.methods.update(
            {
                "chat.postMessage": Method(self.post_message),
                "chat.update": Method(self.update),
                "chat.delete": Method(self.delete),
                "chat.postEphemeral": Method(self.post_ephemeral),
                "chat.getPermalink": Method(self.get_permalink),
                "chat.startStream": Method(self.start_stream),
                "chat.appendStream": Method(self.append_stream),
                "chat.stopStream": Method(self.stop_stream),
            }
        )

    # ------------------------------------------------------------ messages

    def post_message(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("chat:write")
        channel = postable_channel(self.ws, self.api, ctx.text("channel"))
        content = message_content(ctx)
        thread_ts = self._thread(channel, ctx.text("thread_ts"))
        message = self._bot_message(channel, thread_ts, content)
        message.reply_broadcast = bool(ctx.flag("reply_broadcast")) and thread_ts is not None
        message.metadata = message_metadata(ctx)
        message.unfurl_links = ctx.flag("unfurl_links")
        message.unfurl_media = ctx.flag("unfurl_media")
        message.mrkdwn = ctx.flag("mrkdwn")
        self.ws.post(message)
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api(self.ws.team_id)}

    def update(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("chat:write")
        channel = editable_channel(self.ws, ctx.text("channel"))
        self._member_or_public_scope(channel)
        message = self._own_message(channel, ctx.required("ts"), refusal="cant_update_message")
        if message.stream is not None and self._streaming(message.stream):
            raise ApiError("streaming_state_conflict")
        content = message_content(ctx)
        if content.blocks is not None:
            _refuse_reused_context_actions(message.blocks, content.blocks)
        if content.markdown_text is not None:
            message.markdown_text, message.text, message.blocks = content.markdown_text, "", []
        else:
            message.markdown_text = None
            message.text = content.text if content.text is not None else message.text
            # Slack keeps a message's blocks when an update omits them; [] removes them.
            message.blocks = content.blocks if content.blocks is not None else message.blocks
        if content.blocks is not None or content.markdown_text is not None:
            # A streamed message's plan and tasks are blocks of it: new content replaces them.
            message.chunks = []
        message.metadata = message_metadata(ctx) or message.metadata
        message.edited_ts = self.ws.clock.next()
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_api(self.ws.team_id),
        }

    def delete(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("chat:write")
        channel = editable_channel(self.ws, ctx.text("channel"))
        message = self._own_message(channel, ctx.required("ts"), refusal="cant_delete_message")
        message.deleted = True
        return {"channel": channel.id, "ts": message.ts}

    def post_ephemeral(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("chat:write")
        channel = postable_channel(self.ws, self.api, ctx.text("channel"))
        user = ctx.required("user")
        if user not in self.ws.users:
            raise ApiError("user_not_found")
        if user not in channel.members:
            raise ApiError("user_not_in_channel")
        content = message_content(ctx)
        ts = self.ws.clock.next()
        self.ws.ephemerals.append(
            Ephemeral(
                channel.id,
                user,
                ts,
                text=content.text or content.markdown_text or "",
                blocks=content.blocks or [],
                thread_ts=ctx.text("thread_ts"),
            )
        )
        return {"message_ts": ts}

    def get_permalink(self, ctx: CallContext) -> dict[str, Any]:
        channel = visible_channel(self.ws, ctx.text("channel"))
        message = self.ws.find(channel.id, ctx.required("message_ts"))
        if message is None:
            raise ApiError("message_not_found")
        link = (
            f"https://{self.ws.domain}.slack.com/archives/{channel.id}/"
            f"p{message.ts.replace('.', '')}"
        )
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    # ------------------------------------------------------------ streams

    def start_stream(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("chat:write")
        channel = postable_channel(self.ws, self.api, ctx.text("channel"))
        thread_ts = self._thread(channel, ctx.required("thread_ts"))
        recipient_user, recipient_team = self._recipient(ctx, channel)
        mode = ctx.args.get("task_display_mode")
        if errors := display_mode_errors(mode):
            raise invalid_arguments(*errors)
        message = self._bot_message(channel, thread_ts, Content(None, None, ""))
        now = time.monotonic()
        message.stream = StreamState(
            now, recipient_user, recipient_team, task_display_mode=mode or "timeline",
            idle_s=self.stream_idle_s, last_active=now,
        )  # fmt: skip
        self._append_chunks(message, ctx)
        self.ws.post(message)
        return {"channel": channel.id, "ts": message.ts}

    def append_stream(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("chat:write")
        message = self._live_stream(ctx)
        if ctx.text("markdown_text") is None and not ctx.args.get("chunks"):
            raise invalid_arguments("[ERROR] must provide markdown_text or chunks")
        self._append_chunks(message, ctx)
        assert message.stream is not None  # _live_stream guarantees it
        message.stream.last_active = time.monotonic()  # an append keeps the stream alive
        return {"channel": message.channel, "ts": message.ts}

    def stop_stream(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("chat:write")
        message = self._live_stream(ctx)
        final_blocks = parse_blocks(ctx) or []
        self._append_chunks(message, ctx)
        message.blocks = message.blocks + final_blocks
        message.metadata = message_metadata(ctx) or message.metadata
        assert message.stream is not None  # _live_stream guarantees it
        message.stream.stopped = True
        return {
            "channel": message.channel,
            "ts": message.ts,
            "message": message.to_api(self.ws.team_id),
        }

    # ------------------------------------------------------------ helpers

    def _thread(self, channel: Channel, thread_ts: str | None) -> str | None:
        if thread_ts is None:
            return None
        parent = self.ws.find(channel.id, thread_ts)
        if parent is None or parent.is_reply:
            raise ApiError("thread_not_found")
        return thread_ts

    def _bot_message(self, channel: Channel, thread_ts: str | None, content: Content) -> Message:
        if thread_ts is not None:
            # Slack clears the assistant status of a thread as soon as the app replies in it.
            self._clear_status(channel.id, thread_ts)
        return Message(
            channel.id,
            self.ws.clock.next(),
            self.ws.bot_user_id,
            text=content.text or "",
            blocks=content.blocks or [],
            thread_ts=thread_ts,
            bot_id=self.ws.bot_id,
            app_id=self.ws.app_id,
            markdown_text=content.markdown_text,
        )

    def _member_or_public_scope(self, channel: Channel) -> None:
        # Editing where the bot is not a member is allowed only where it could have posted:
        # a public channel with chat:write.public. Slack's documentation lists no membership
        # error for chat.update; refusing is the stricter reading (docs/sandbox.md).
        if (
            self.ws.bot_user_id not in channel.members
            and "chat:write.public" not in self.api.scopes
        ):
            raise ApiError("not_in_channel")

    def _streaming(self, stream: StreamState) -> bool:
        return stream.live(time.monotonic(), self.stream_ttl_s)

    def _clear_status(self, channel_id: str, thread_ts: str) -> None:
        if self.ws.current_status(channel_id, thread_ts):
            self.ws.statuses.append(Status(channel_id, thread_ts, "", time.monotonic()))

    def _own_message(self, channel: Channel, ts: str, *, refusal: str) -> Message:
        message = self.ws.find(channel.id, ts)
        if message is None:
            raise ApiError("message_not_found")
        if message.user != self.ws.bot_user_id:
            raise ApiError(refusal)
        return message

    def _recipient(self, ctx: CallContext, channel: Channel) -> tuple[str | None, str | None]:
        user, team = ctx.text("recipient_user_id"), ctx.text("recipient_team_id")
        if channel.is_im:
            return user, team
        missing = [
            n for n, v in (("recipient_user_id", user), ("recipient_team_id", team)) if not v
        ]
        if missing:
            raise invalid_arguments(*(f"[ERROR] missing required field: {n}" for n in missing))
        if user not in self.ws.users:
            raise ApiError("user_not_found")
        return user, team

    def _live_stream(self, ctx: CallContext) -> Message:
        channel = visible_channel(self.ws, ctx.text("channel"))
        message = self.ws.find(channel.id, ctx.required("ts"))
        if message is None:
            raise ApiError("message_not_found")
        stream = message.stream
        if stream is None or not self._streaming(stream):
            raise ApiError("message_not_in_streaming_state")
        return message

    def _append_chunks(self, message: Message, ctx: CallContext) -> None:
        text = ctx.text("markdown_text")
        if text is not None and slack_length(text) > MARKDOWN_TEXT_MAX:
            raise ApiError("msg_too_long")
        chunks = ctx.structured("chunks", format_error="invalid_chunks_format")
        if chunks is not None and text is not None:
            # A live probe saw Slack refuse the two together (vercel/chat#886).
            raise invalid_arguments("[ERROR] markdown_text cannot be combined with chunks")
        chunks = [] if chunks is None else chunks
        if errors := chunk_errors(chunks):
            raise invalid_arguments(*errors)
        pieces = [text or ""] + [c["text"] for c in chunks if c["type"] == "markdown_text"]
        if any(slack_length(p) > MARKDOWN_TEXT_MAX for p in pieces):
            raise ApiError("msg_too_long")
        structured = [c for c in chunks if c["type"] != "markdown_text"]
        if len(task_ids(message.chunks + structured)) > TASKS_MAX:
            raise invalid_arguments(f"[ERROR] a message shows at most {TASKS_MAX} tasks")
        markdown = (message.markdown_text or "") + "".join(pieces)
        shown = shown_chunks(message.chunks + structured)
        if slack_length(markdown) + chunks_text_length(shown) > MESSAGE_TEXT_MAX:
            raise ApiError("msg_too_long")
        message.markdown_text = markdown
        message.chunks += structured
