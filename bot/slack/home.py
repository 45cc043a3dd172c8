"""App Home: each user's spending view, the whole workspace's for admins.

Published on `app_home_opened` (Home tab only). The summary and the day-by-day table cover
the same 30 days; who sees what is decided here, on the server, at every opening.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import initial_settings, parse_period
from bot.slack.admins import is_admin
from bot.slack.deps import Services
from bot.slack.limits import COMMAND

HOME_DAYS = 30


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_home_opened")
    async def on_home(
        event: dict[str, Any], context: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if event.get("tab", "home") != "home":
            return
        team_id = str(context.get("team_id") or "")
        await publish_home(services, client, team_id=team_id, user_id=event["user"])


async def publish_home(
    services: Services, client: AsyncWebClient, *, team_id: str, user_id: str
) -> None:
    admin = await is_admin(services.settings, client, user_id)
    scope = None if admin else user_id
    now = datetime.now(UTC)
    since, until = parse_period(f"{HOME_DAYS}d", now=now)
    report = await services.reports.summary(team_id, since=since, until=until, user_id=scope)
    daily = await services.reports.daily(team_id, days=HOME_DAYS, user_id=scope, today=now.date())
    # Votes are opinions of other people's runs: only admins see them.
    feedback = (
        await services.feedback.feedback(team_id, since=since, until=until) if admin else None
    )
    last_eval = await services.evals.latest() if admin else None
    view = blocks.home_view(
        report=report,
        daily=daily,
        is_admin=admin,
        command=COMMAND,
        period_label=f"last {HOME_DAYS} days",
        prices_as_of=services.prices.as_of,
        today=now.date(),
        admin_blocks=await _budget_blocks(services, team_id) if admin else (),
        feedback=feedback,
        last_eval=last_eval,
    )
    await client.views_publish(user_id=user_id, view=view)


async def _budget_blocks(services: Services, team_id: str) -> list[dict[str, Any]]:
    """An admin's budgets section: what is in force now and the last changes."""
    current = await services.governance.budget_settings(
        team_id, initial_settings(services.settings)
    )
    changes = await services.governance.changes(team_id)
    return blocks.budgets_home_blocks(current, changes)
