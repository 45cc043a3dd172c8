"""Reading a Slack thread for a model, and the marks orchestrate leaves on its own messages.

`read_thread` pages through `conversations.replies` (every page; messages are de-duplicated by
`ts`, since whether a continuation page repeats the parent is not settled) and returns each
message before the one being answered as a `ThreadMessage`: text decoded from Slack's wire
form (`&lt;` entities, `<@U…>` mentions, `<url|label>` links) and labelled with its author
(a user id, another app's bot, or orchestrate itself, whose messages are read from their
blocks because their `text` is only a notification fallback). A thread the bot cannot read
raises `ThreadUnreadable` with Slack's error code.

A run marks its thread with message metadata, so any instance can tell a run's thread from
a discussion without the ledger: the run's first message carries `orchestrate_run` (the run
id and its component names, flat as Slack requires) and the message closing the run carries
`orchestrate_footer` (the run id), whose footer a follow-up updates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.conversation import ThreadMessage
from bot.core.models import Strategy
from bot.core.text import storable
from bot.slack.poster import slack_error

RUN_EVENT = "orchestrate_run"
FOOTER_EVENT = "orchestrate_footer"
PAGE_SIZE = 200  # Slack recommends at most 200 a page
ORCHESTRATE = "orchestrate"

_SPECIAL = re.compile(r"<!(channel|here|everyone)(?:\|[^>]*)?>")
_SUBTEAM = re.compile(r"<!subteam\^[^|>]+\|([^>]+)>")
_DATE = re.compile(r"<!date\^[^|>]+\|([^>]+)>")
_USER = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]+))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]+))?>")


@dataclass(frozen=True, slots=True)
class Me:
    """The bot's own identity in the workspace (Bolt's context has both)."""

    user_id: str
    bot_id: str | None


@dataclass(frozen=True, slots=True)
class RunMark:
    """A run whose first message is in this thread."""

    run_id: str
    ts: str
    components: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FooterMark:
    """The message that closes a run, with what chat.update needs to amend its footer."""

    run_id: str
    ts: str
    text: str
    blocks: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Thread:
    root_ts: str
    messages: tuple[ThreadMessage, ...]
    runs: tuple[RunMark, ...] = ()
    footers: Mapping[str, FooterMark] = field(default_factory=dict)

    @property
    def first_run(self) -> RunMark | None:
        """The run the thread belongs to: follow-ups are billed under it."""
        return self.runs[0] if self.runs else None

    @property
    def latest_run(self) -> RunMark | None:
        """The newest strategy in the thread (after a re-plan, the new one)."""
        return self.runs[-1] if self.runs else None


class ThreadUnreadable(Exception):
    """Slack would not give the thread; `error` is its code (channel_not_found, …)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def run_metadata(run_id: str, strategy: Strategy | None) -> dict[str, Any]:
    """The `orchestrate_run` mark: flat payload (Slack allows strings, numbers, booleans)."""
    payload: dict[str, Any] = {"run_id": run_id}
    if strategy is not None:
        payload["components"] = len(strategy.components)
        for number, component in enumerate(strategy.components, start=1):
            payload[f"component_{number}"] = component.name[:200]
    return {"event_type": RUN_EVENT, "event_payload": payload}


def footer_metadata(run_id: str) -> dict[str, Any]:
    return {"event_type": FOOTER_EVENT, "event_payload": {"run_id": run_id}}


async def read_thread(
    client: AsyncWebClient, *, channel: str, root_ts: str, before_ts: str | None, me: Me
) -> Thread:
    """Every message of the thread older than `before_ts` (all when None), oldest first."""
    raw = await _all_messages(client, channel=channel, root_ts=root_ts)
    if before_ts is not None:
        raw = [m for m in raw if float(m["ts"]) < float(before_ts)]
    runs: list[RunMark] = []
    footers: dict[str, FooterMark] = {}
    messages: list[ThreadMessage] = []
    for message in raw:
        own = _is_mine(message, me)
        if own:
            _collect_marks(message, runs, footers)
        text = blocks_text(message.get("blocks") or []) if own else ""
        text = text or decode(str(message.get("text") or ""))
        if text.strip():
            messages.append(ThreadMessage(_author(message, own), text, by_orchestrate=own))
    return Thread(root_ts, tuple(messages), tuple(runs), footers)


async def _all_messages(
    client: AsyncWebClient, *, channel: str, root_ts: str
) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    try:
        while True:
            page = await client.conversations_replies(
                channel=channel,
                ts=root_ts,
                limit=PAGE_SIZE,
                cursor=cursor,
                include_all_metadata=True,
            )
            for message in page.get("messages") or []:
                seen.setdefault(str(message["ts"]), message)
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
    except SlackApiError as exc:
        raise ThreadUnreadable(slack_error(exc) or "unknown_error") from exc
    return sorted(seen.values(), key=lambda m: float(m["ts"]))


def _is_mine(message: Mapping[str, Any], me: Me) -> bool:
    bot_id = message.get("bot_id")
    if bot_id is not None:
        return me.bot_id is not None and bot_id == me.bot_id
    return message.get("user") == me.user_id


def _author(message: Mapping[str, Any], own: bool) -> str:
    if own:
        return ORCHESTRATE
    if message.get("bot_id"):
        profile = message.get("bot_profile") or {}
        return f"bot {profile.get('name') or message['bot_id']}"
    return str(message.get("user") or "someone")


def _collect_marks(
    message: Mapping[str, Any], runs: list[RunMark], footers: dict[str, FooterMark]
) -> None:
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    run_id = payload.get("run_id")
    if not isinstance(run_id, str):
        return
    ts = str(message["ts"])
    if metadata.get("event_type") == RUN_EVENT:
        count = payload.get("components")
        names = tuple(
            str(payload.get(f"component_{n}", f"Component {n}"))
            for n in range(1, (count if isinstance(count, int) else 0) + 1)
        )
        runs.append(RunMark(run_id, ts, names))
    elif metadata.get("event_type") == FOOTER_EVENT:
        blocks = tuple(message.get("blocks") or ())
        footers[run_id] = FooterMark(run_id, ts, str(message.get("text") or ""), blocks)


def decode(text: str) -> str:
    """Slack's wire text as a person reads it: mentions and links spelled out, entities
    decoded (after the markup, so a decoded `&lt;` can never become markup), and nothing a
    database cannot store (`bot.core.text.storable`)."""
    text = storable(text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1)}", text)
    text = _SUBTEAM.sub(lambda m: m.group(1), text)
    text = _DATE.sub(lambda m: m.group(1), text)
    text = _USER.sub(lambda m: f"@{m.group(2) or m.group(1)}", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def blocks_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    """The visible text of our own blocks (sections, headers, context, markdown), decoded."""
    parts: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, Mapping):
            parts.append(str(text.get("text") or ""))
        elif isinstance(text, str):  # a `markdown` block
            parts.append(text)
        for element in [*(block.get("fields") or ()), *(block.get("elements") or ())]:
            if isinstance(element, Mapping) and isinstance(element.get("text"), str):
                parts.append(element["text"])
    return decode("\n".join(p for p in parts if p))


def mention_request(text: str, *, bot_user_id: str) -> str:
    """What a mention asks, without the bot's own mention, decoded."""
    return decode(re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)).strip()
