"""`@orchestrate` mentions: answered in the mention's thread, once per event.

Bolt does not de-duplicate Events API retries (Slack resends an event it thinks was not
acknowledged, with the same `event_id`), so each event id is answered once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from slack_bolt.async_app import AsyncApp

import blocks
from bot.slack.commands import COMMAND
from bot.slack.deps import Services


def register(app: AsyncApp, services: Services) -> None:
    seen_events: OrderedDict[str, None] = OrderedDict()

    @app.event("app_mention")
    async def on_mention(body: dict[str, Any], event: dict[str, Any]) -> None:
        if seen(seen_events, str(body.get("event_id", ""))):
            return
        hint = blocks.help_message(command=COMMAND, max_chars=services.settings.max_question_chars)
        await services.poster.post(
            event["channel"], hint, thread_ts=event.get("thread_ts") or event["ts"]
        )


def seen(memory: OrderedDict[str, None], event_id: str, *, keep: int = 10_000) -> bool:
    """True if `event_id` was seen before; remembers the last `keep` ids."""
    if not event_id:
        return False
    if event_id in memory:
        return True
    memory[event_id] = None
    if len(memory) > keep:
        memory.popitem(last=False)
    return False
