"""One workspace per install: requests naming another team are refused before any listener.

orchestrate is installed in one workspace (multi-workspace comes with OAuth), whose team id
`auth.test` tells at start-up. Every command, event and action carries the team it comes
from; one naming any other team (or none) would read and spend under a workspace that is
not this one's (an admin of one team asking `costs` for another), so it is answered here
and goes no further: a slash command gets an ephemeral line saying so, an event or action
a bare 200 (Slack must not retry it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse

import blocks

log = logging.getLogger(__name__)


def only_workspace(app: AsyncApp, team_id: str) -> None:
    """Refuse, on `app`, every request whose team is not `team_id`."""

    @app.middleware
    async def same_team(
        context: dict[str, Any], body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        if context.get("team_id") == team_id:
            await next()
            return None
        log.warning(
            "refused a request for team %s (installed in %s)", context.get("team_id"), team_id
        )
        if body.get("command"):
            message = blocks.wrong_workspace_message()
            reply = {
                "response_type": "ephemeral",
                "text": message.text,
                "blocks": list(message.blocks),
            }
            return BoltResponse(
                status=200, body=json.dumps(reply), headers={"content-type": "application/json"}
            )
        return BoltResponse(status=200, body="")
