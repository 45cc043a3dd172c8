"""The 80% warning: one DM to each admin when a workspace nears its monthly budget.

After every run, `BudgetWatch` compares the workspace's spending this month with
`BUDGET_WORKSPACE_MONTHLY_USD`. Past 80%, it claims the month's alert in the ledger (true
exactly once per team and month, even across instances) and only then DMs each admin:
ORCHESTRATE_ADMINS and the workspace's admins and owners (`users.list`).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import Decimal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import BudgetAlerts
from bot.settings import Settings
from bot.slack.admins import workspace_admins
from bot.slack.poster import describe

log = logging.getLogger(__name__)
ALERT_AT_PCT = 80


class BudgetWatch:
    """Called with a team id after each run; DMs admins once a month past the threshold."""

    def __init__(self, *, settings: Settings, ledger: BudgetAlerts, client: AsyncWebClient) -> None:
        self._settings = settings
        self._ledger = ledger
        self._client = client

    async def __call__(self, team_id: str, *, now: datetime | None = None) -> int:
        """Check `team_id`; returns how many admins were told (0 almost always)."""
        budget = self._settings.budget_workspace_monthly_usd
        if not budget:
            return 0
        now = now or datetime.now(UTC)
        spent = await self._ledger.workspace_month_spent(team_id, now)
        if spent * 100 < budget * ALERT_AT_PCT:
            return 0
        month = date(now.year, now.month, 1)
        if not await self._ledger.claim_budget_alert(team_id, month, ALERT_AT_PCT):
            return 0
        return await self._tell_admins(spent, budget, month)

    async def _tell_admins(self, spent: Decimal, budget: Decimal, month: date) -> int:
        message = blocks.budget_alert_message(
            spent_usd=spent, budget_usd=budget, month_label=month.strftime("%B %Y")
        )
        told = 0
        for user_id in await workspace_admins(self._settings, self._client):
            try:
                await self._client.chat_postMessage(
                    channel=user_id, text=message.text, blocks=list(message.blocks)
                )
                told += 1
            except SlackApiError as exc:
                log.warning("could not DM admin %s: %s", user_id, describe(exc))
        return told
