"""The one definition of "admin": who may see workspace figures and change settings.

Workspace admins and owners (asked of Slack at every request, so a demotion takes effect at
once) and the user IDs in `ORCHESTRATE_ADMINS`. Every admin view and action calls
`is_admin` on the server; hiding a button is never the check.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.poster import describe

log = logging.getLogger(__name__)


async def is_admin(settings: Settings, client: AsyncWebClient, user_id: str) -> bool:
    """Workspace admins and owners (asked of Slack each time) and ORCHESTRATE_ADMINS."""
    if user_id in settings.admins:
        return True
    try:
        user = (await client.users_info(user=user_id))["user"]
    except SlackApiError as exc:
        log.warning("users.info failed for %s: %s", user_id, describe(exc))
        return False  # when in doubt, show only the user's own figures
    return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


async def workspace_admins(settings: Settings, client: AsyncWebClient) -> list[str]:
    """Everyone `is_admin` would say yes to, sorted: ORCHESTRATE_ADMINS and the workspace's
    admins and owners (`users.list`, every page), bots and deactivated people left out."""
    admins = set(settings.admins)
    cursor: str | None = None
    while True:
        page = await client.users_list(limit=200, cursor=cursor)
        members: list[dict[str, Any]] = page.get("members", [])
        admins |= {
            m["id"]
            for m in members
            if (m.get("is_admin") or m.get("is_owner"))
            and not m.get("is_bot")
            and not m.get("deleted")
        }
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if cursor is None:
            return sorted(admins)
