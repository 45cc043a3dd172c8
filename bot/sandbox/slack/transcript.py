"""A channel of the Slack sandbox written out as a person would read it.

Top-level messages come in `ts` order, each as "author: text" with Block Kit rendered as
text (`slack_blocks.render_blocks`); thread replies are indented under their parent;
edited messages end with "(edited)"; a stream still open ends with "(streaming)"; an
ephemeral shows as "(only visible to Name)" where its reader saw it; a deleted message is
gone, unless it still has replies, where Slack leaves "This message was deleted." A thread
with a live assistant status shows it last, in brackets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.sandbox.slack.blocks import displayed, render_blocks
from bot.sandbox.slack.chunks import shown_chunks
from bot.sandbox.slack.workspace import BOT_NAME, Ephemeral, Message, Workspace

INDENT = "    "


def transcript(ws: Workspace, channel_id: str, *, stream_ttl_s: float) -> str:
    lines = [title(ws, channel_id)]
    for item in _top_level(ws, channel_id):
        lines += _entry(ws, item, "", stream_ttl_s)
        if isinstance(item, Message):
            lines += _thread(ws, item, stream_ttl_s)
    return "\n".join(lines) + "\n"


def title(ws: Workspace, channel_id: str) -> str:
    channel = ws.channels.get(channel_id)
    if channel is None:
        raise KeyError(f"no channel {channel_id!r} in the sandbox")
    return f"DM with {_name(ws, channel.im_user)}" if channel.is_im else f"#{channel.name}"


def entries(ws: Workspace, channel_id: str, *, stream_ttl_s: float) -> list[Entry]:
    """The channel's messages in reading order (each thread under its parent), each as the
    lines `transcript` writes for it; a thread's live status is left out (it is not a
    message). For a reader that prints a channel as it changes."""
    title(ws, channel_id)  # an unknown channel is refused as `transcript` refuses it
    found: list[Entry] = []
    for item in _top_level(ws, channel_id):
        found.append(_as_entry(ws, item, "", stream_ttl_s))
        if isinstance(item, Message):
            replies: list[Message | Ephemeral] = [*ws.thread_replies(item.channel, item.ts)]
            replies += [
                e for e in ws.ephemerals if e.channel == item.channel and e.thread_ts == item.ts
            ]
            for reply in sorted(replies, key=lambda r: r.ts):
                found.append(_as_entry(ws, reply, INDENT, stream_ttl_s))
    return found


@dataclass(frozen=True)
class Entry:
    """One message as a reader sees it: `key` names it across edits."""

    key: str
    lines: tuple[str, ...]
    streaming: bool


def _as_entry(ws: Workspace, item: Message | Ephemeral, indent: str, ttl: float) -> Entry:
    kind = "ephemeral" if isinstance(item, Ephemeral) else "message"
    streaming = isinstance(item, Message) and _suffix(item, ttl) == " (streaming)"
    lines = tuple(_entry(ws, item, indent, ttl))
    return Entry(key=f"{kind}:{item.channel}:{item.ts}", lines=lines, streaming=streaming)


def _top_level(ws: Workspace, channel_id: str) -> list[Message | Ephemeral]:
    history = ws.history.get(channel_id, [])
    parents = {m.ts for m in history if not m.is_reply}
    messages = [m for m in history if not m.is_reply and _shown(ws, m)]
    broadcasts = [m for m in history if m.is_reply and m.reply_broadcast and not m.deleted]
    loose = [
        e
        for e in ws.ephemerals
        if e.channel == channel_id and (e.thread_ts is None or e.thread_ts not in parents)
    ]
    return sorted([*messages, *broadcasts, *loose], key=lambda item: item.ts)


def _shown(ws: Workspace, message: Message) -> bool:
    return not message.deleted or bool(ws.thread_replies(message.channel, message.ts))


def _thread(ws: Workspace, parent: Message, stream_ttl_s: float) -> list[str]:
    replies: list[Message | Ephemeral] = [*ws.thread_replies(parent.channel, parent.ts)]
    replies += [
        e for e in ws.ephemerals if e.channel == parent.channel and e.thread_ts == parent.ts
    ]
    lines: list[str] = []
    for reply in sorted(replies, key=lambda item: item.ts):
        lines += _entry(ws, reply, INDENT, stream_ttl_s)
    status = ws.current_status(parent.channel, parent.ts)
    if status:
        lines.append(f"{INDENT}[{BOT_NAME} {status}]")
    return lines


def _entry(ws: Workspace, item: Message | Ephemeral, indent: str, stream_ttl_s: float) -> list[str]:
    if isinstance(item, Ephemeral):
        author = "Slackbot" if item.source == "slack" else BOT_NAME
        head = f"(only visible to {_name(ws, item.user)}) {author}"
        return _format(head, _body(item.text, item.blocks), indent, "")
    if item.deleted:
        return [f"{indent}This message was deleted."]
    head = _name(ws, item.user)
    if item.is_reply and item.reply_broadcast and not indent:
        head += " (replied to a thread)"
    return _format(head, _message_body(item), indent, _suffix(item, stream_ttl_s))


def _suffix(message: Message, stream_ttl_s: float) -> str:
    stream = message.stream
    if stream and stream.live(time.monotonic(), stream_ttl_s):
        return " (streaming)"
    return " (edited)" if message.edited_ts else ""


def _message_body(message: Message) -> list[str]:
    lines = (message.markdown_text or "").splitlines()
    stopped = message.stream is not None and message.stream.stopped
    chunks = [_chunk_line(c, stopped=stopped) for c in shown_chunks(message.chunks)]
    # Slack shows a stream's plan and tasks above the text streamed with them.
    lines = chunks + lines
    return lines + _body("" if message.markdown_text else message.text, message.blocks)


def _body(text: str, blocks: list[dict[str, Any]]) -> list[str]:
    # Slack shows blocks when a message has them; `text` is then only the notification.
    return render_blocks(blocks) if blocks else displayed(text).splitlines()


def _chunk_line(chunk: dict[str, Any], *, stopped: bool) -> str:
    """A plan's title, or one task card as its latest update left it. Slack shows a task still
    open when its stream stopped as failed, so the transcript says `error (left open)`."""
    if chunk.get("type") == "task_update":
        status = str(chunk.get("status", ""))
        if stopped and status in ("pending", "in_progress"):
            status = "error (left open)"
        details = " · ".join(str(chunk[k]) for k in ("details", "output") if chunk.get(k))
        return f"[{status}] {chunk.get('title', '')}" + (f" — {details}" if details else "")
    if chunk.get("type") == "plan_update":
        return f"[plan] {chunk.get('title', '')}"
    return f"[{chunk.get('type')}]"


def _format(head: str, body: Iterable[str], indent: str, suffix: str) -> list[str]:
    body = list(body) or [""]
    lines = [f"{indent}{head}: {body[0]}".rstrip()]
    lines += [f"{indent}  {line}".rstrip() for line in body[1:]]
    lines[-1] += suffix
    return lines


def _name(ws: Workspace, user_id: str | None) -> str:
    user = ws.users.get(user_id or "")
    return user.real_name if user else str(user_id)
