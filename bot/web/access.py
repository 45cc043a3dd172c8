"""Who may see a run's page: decided on the server at every request, from Slack.

A person sees a run only if they signed in to the run's workspace and either are an admin
(`bot.slack.admins.is_admin`, the app's one definition) or can see the channel the run was
asked in: any member of the workspace for a public channel, a member for a private one
(`conversations.members`, every page), the person the bot talks to for a DM. When Slack
cannot say (the bot is not in the channel, an error, no answer), the answer is no: the page
then shows nothing of the run, exactly as for a run that does not exist.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ledger import RunInfo
from bot.settings import Settings
from bot.slack.admins import is_admin
from bot.slack.poster import SLACK_FAILURES, describe
from bot.web.auth import Viewer

log = logging.getLogger(__name__)


async def may_see(settings: Settings, client: AsyncWebClient, viewer: Viewer, run: RunInfo) -> bool:
    """Whether `viewer` may see `run` (see the module docstring)."""
    if viewer.team_id != run.team_id:
        return False
    try:
        if await is_admin(settings, client, viewer.user_id):
            return True
        return await _in_channel(client, viewer.user_id, run.thread_channel or run.channel_id)
    except (SlackApiError, *SLACK_FAILURES) as exc:
        log.info(
            "could not tell whether %s may see run %s: %s", viewer.user_id, run.id, describe(exc)
        )
        return False


async def admin(settings: Settings, client: AsyncWebClient, viewer: Viewer, team_id: str) -> bool:
    """An admin of the installed workspace (`team_id`)."""
    if viewer.team_id != team_id:
        return False
    try:
        return await is_admin(settings, client, viewer.user_id)
    except (SlackApiError, *SLACK_FAILURES):
        return False


async def _in_channel(client: AsyncWebClient, user_id: str, channel_id: str) -> bool:
    channel: dict[str, Any] = (await client.conversations_info(channel=channel_id))["channel"]
    if channel.get("is_im"):
        return bool(channel.get("user") == user_id)
    if not channel.get("is_private") and not channel.get("is_mpim"):
        return True  # public: any member of the workspace may read it
    cursor: str | None = None
    while True:
        page = await client.conversations_members(channel=channel_id, cursor=cursor, limit=1000)
        if user_id in page.get("members", []):
            return True
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if cursor is None:
            return False
