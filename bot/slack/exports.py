"""`/orchestrate costs csv [period]`: every call of the period as a CSV file in the admin's DM.

Admins only (decided on the server at each request, like every admin view). The ledger
writes the CSV (exact 9-decimal costs, empty when unpriced); it is uploaded with Slack's
external upload (`files.getUploadURLExternal`, a POST of the bytes to the URL Slack gives,
then `files.completeUploadExternal` sharing it into the admin's DM, opened with
`conversations.open`): the SDK's `files_upload_v2` makes those three steps. The asker gets an
ephemeral saying where the file went, or what went wrong.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import read_period
from bot.slack.admins import is_admin
from bot.slack.deps import Services
from bot.slack.limits import COMMAND
from bot.slack.poster import describe
from bot.slack.replies import PrivateReply
from bot.slack.requests import ephemeral

log = logging.getLogger(__name__)


async def send_calls_csv(
    services: Services,
    client: AsyncWebClient,
    *,
    command: dict[str, Any],
    period: str,
    respond: PrivateReply,
) -> None:
    """Upload the period's calls as CSV to the asking admin's DM; tell them ephemerally."""
    user_id, team_id = command["user_id"], command["team_id"]
    if not await is_admin(services.settings, client, user_id):
        await respond(**ephemeral(blocks.csv_admins_only_message(command=COMMAND)))
        return
    try:
        chosen = read_period(period, now=datetime.now(UTC))
    except ValueError as exc:
        await respond(**ephemeral(blocks.bad_period_message(command=COMMAND, problem=str(exc))))
        return
    out = io.StringIO()
    rows = await services.export.calls_csv(team_id, chosen.since, out, until=chosen.until)
    label = blocks.period_label(chosen)
    name = f"orchestrate-calls-{chosen.first:%Y-%m-%d}-to-{chosen.last:%Y-%m-%d}.csv"
    try:
        dm = (await client.conversations_open(users=user_id))["channel"]["id"]
        await client.files_upload_v2(
            channel=dm,
            content=out.getvalue(),
            filename=name,
            title=f"orchestrate calls, {label}",
            initial_comment=blocks.csv_comment(rows=rows, period_label=label),
        )
    except (SlackApiError, SlackRequestError) as exc:
        log.warning("could not upload the costs CSV for %s: %s", user_id, describe(exc))
        await respond(**ephemeral(blocks.csv_failed_message()))
        return
    await respond(**ephemeral(blocks.csv_sent_message(rows=rows, period_label=label)))
