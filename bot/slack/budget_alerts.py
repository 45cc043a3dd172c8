"""Alerts where admins look: the soft thresholds of the monthly budget, and the weekly digest.

After every run, `BudgetWatch` reads the team's settings (from the ledger, each time) and
compares the month's spend with the workspace's monthly budget. The highest alert threshold
crossed (of 50/80/100% unless admins chose others) is claimed in the ledger, true once per
team, month and threshold across every instance, and only the instance that claimed it posts
the alert. `Digest` posts last week's digest (spend by model, the top channels and people, the
saving against running everything on the strategy model, the week's 👍/👎 votes) once per
team and ISO week, claimed the same way; the services run it after runs and on a clock, so a
quiet week still gets one.

Both go to the admins' alert channel; without one (or when the bot cannot post there), to each
admin's DM, which the manifest's Messages tab shows: ORCHESTRATE_ADMINS and the workspace's
admins and owners (`users.list`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import BudgetAlerts, CostReports, Feedback, GovernanceStore, initial_settings
from bot.ledger.periods import week_bounds
from bot.settings import Settings
from bot.slack.admins import workspace_admins
from bot.slack.poster import describe, slack_error

log = logging.getLogger(__name__)
DIGEST_CHECK_EVERY_S = 3600.0


class Delivery:
    """Posts an alert where the team's admins look: the alert channel, else their DMs."""

    def __init__(self, *, settings: Settings, client: AsyncWebClient) -> None:
        self._settings = settings
        self._client = client

    async def __call__(self, message: blocks.OutboundMessage, alert_channel: str | None) -> int:
        """Post `message`; returns how many conversations got it."""
        if alert_channel and await self._post(alert_channel, message):
            return 1
        told = 0
        for user_id in await workspace_admins(self._settings, self._client):
            told += await self._post(user_id, message)
        return told

    async def _post(
        self, channel: str, message: blocks.OutboundMessage, *, may_join: bool = True
    ) -> bool:
        try:
            await self._client.chat_postMessage(channel=channel, **message.post_kwargs())
        except SlackApiError as exc:
            # A public alert channel the bot is not in is joined, as a run's channel is
            # (the app asks for no chat:write.public: it would post where it cannot read).
            if may_join and slack_error(exc) == "not_in_channel" and await self._join(channel):
                return await self._post(channel, message, may_join=False)
            log.warning("could not post an alert to %s: %s", channel, describe(exc))
            return False
        return True

    async def _join(self, channel: str) -> bool:
        try:
            await self._client.conversations_join(channel=channel)
        except SlackApiError as exc:
            log.info("could not join the alert channel %s: %s", channel, slack_error(exc))
            return False
        return True


class BudgetWatch:
    """Called with a team id after each run; alerts once per month and threshold crossed."""

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: BudgetAlerts,
        governance: GovernanceStore,
        deliver: Delivery,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._governance = governance
        self._deliver = deliver

    async def __call__(self, team_id: str, *, now: datetime | None = None) -> int:
        """Check `team_id`; returns how many conversations were told (0 almost always)."""
        current = await self._governance.budget_settings(team_id, initial_settings(self._settings))
        budget = current.workspace_monthly_usd
        if not budget or not current.alert_thresholds_pct:
            return 0
        now = now or datetime.now(UTC)
        spent = await self._ledger.workspace_month_spent(team_id, now)
        crossed = [t for t in current.alert_thresholds_pct if spent * 100 >= budget * t]
        if not crossed:
            return 0
        # Only the highest threshold crossed is claimed: two instances claiming one each of
        # several thresholds crossed at once would both post. Lower ones passed over stay
        # unclaimed, and never fire later (spend does not go down within a month).
        top, month = max(crossed), date(now.year, now.month, 1)
        if not await self._ledger.claim_budget_alert(team_id, month, top):
            return 0
        message = blocks.budget_alert_message(
            spent_usd=spent,
            budget_usd=budget,
            month_label=month.strftime("%B %Y"),
            threshold_pct=top,
        )
        return await self._deliver(message, current.alert_channel)


class Digest:
    """Last week's digest, posted once per team and ISO week across instances."""

    def __init__(
        self,
        *,
        settings: Settings,
        reports: CostReports,
        feedback: Feedback,
        governance: GovernanceStore,
        deliver: Delivery,
    ) -> None:
        self._settings = settings
        self._reports = reports
        self._feedback = feedback
        self._governance = governance
        self._deliver = deliver

    async def post_due(self, *, now: datetime | None = None) -> int:
        """Post the digest of the week before `now` for every team that ran something then,
        unless another instance already has; returns how many digests this call posted."""
        since, until = week_bounds((now or datetime.now(UTC)) - timedelta(days=7))
        posted = 0
        for team_id in await self._reports.teams_with_runs(since=since, until=until):
            posted += await self._post(team_id, since, until)
        return posted

    async def _post(self, team_id: str, since: datetime, until: datetime) -> int:
        year, week, _ = since.isocalendar()
        if not await self._governance.claim_notice(team_id, f"digest:{year}-W{week:02d}"):
            return 0
        report = await self._reports.summary(team_id, since=since, until=until)
        votes = await self._feedback.feedback(team_id, since=since, until=until)
        current = await self._governance.budget_settings(team_id, initial_settings(self._settings))
        last_day = (until - timedelta(days=1)).date()
        message = blocks.weekly_digest_message(
            report, first=since.date(), last=last_day, feedback=votes
        )
        return min(1, await self._deliver(message, current.alert_channel))


async def digest_clock(digest: Digest, *, every_s: float = DIGEST_CHECK_EVERY_S) -> None:
    """Post due digests now and then every `every_s` seconds, until cancelled."""
    while True:
        try:
            await digest.post_due()
        except Exception:
            # The clock must outlive a bad hour (the database away, Slack refusing).
            log.exception("the weekly digest check failed; trying again later")
        await asyncio.sleep(every_s)
