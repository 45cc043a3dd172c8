"""Alerts where admins look: the soft thresholds of the monthly budget, and the weekly digest.

Both are durable workflows of the run engine (`bot.slack.workflows`), each sending a step:

- After every run, `BudgetWatch` reads the team's settings (from the ledger, each time) and
  compares the month's spend with the workspace's monthly budget. For the highest alert
  threshold crossed (of 50/80/100% unless admins chose others) it starts the alert's workflow,
  whose id is the team, month and threshold: started once across every instance (a second
  start of that id starts nothing), and resumed after a crash without posting what it had
  posted (each post is a step).
- `Digest` posts last week's digest (spend by model, the top channels and people, the saving
  against running everything on the strategy model, the week's 👍/👎 votes) for every team
  that ran something then. The engine's scheduler fires it (`DIGEST_SCHEDULE`, as each ISO
  week begins) under an id of the scheduled time, so each week's digest runs once across
  instances, and a week missed while every instance was down is fired at the next start.

Both go to the admins' alert channel; without one (or when the bot cannot post there), to each
admin's DM, which the manifest's Messages tab shows: ORCHESTRATE_ADMINS and the workspace's
admins and owners (`users.list`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import BudgetAlerts, CostReports, Feedback, GovernanceStore, initial_settings
from bot.ledger.periods import week_bounds
from bot.settings import Settings
from bot.slack import engine
from bot.slack.admins import workspace_admins
from bot.slack.engine import Engine
from bot.slack.poster import describe, slack_error

log = logging.getLogger(__name__)
DIGEST_SCHEDULE = "weekly-digest"  # its cron: `Settings.digest_cron`


class Delivery:
    """Posts an alert where the team's admins look: the alert channel, else their DMs."""

    def __init__(self, *, settings: Settings, client: AsyncWebClient) -> None:
        self._settings = settings
        self._client = client

    async def __call__(
        self, message: blocks.OutboundMessage, alert_channel: str | None, *, key: str
    ) -> int:
        """Post `message`, inside a workflow; returns how many conversations got it. Each
        post is a step (named after `key` and the conversation), so a workflow resumed after
        a crash posts again none it had posted."""
        if alert_channel:
            post = partial(self._post, alert_channel, message)
            if await engine.step(f"{key} post {alert_channel}", post):
                return 1
        admins = await engine.step(
            f"{key} admins", partial(workspace_admins, self._settings, self._client)
        )
        told = 0
        for user_id in admins:
            told += await engine.step(
                f"{key} post {user_id}", partial(self._post, user_id, message)
            )
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


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """One threshold alert, as its workflow is given it (plain data, kept by the engine)."""

    team_id: str
    month: date
    threshold_pct: int
    spent_usd: Decimal
    budget_usd: Decimal
    alert_channel: str | None

    @property
    def workflow_id(self) -> str:
        return f"budget-alert:{self.team_id}:{self.month:%Y-%m}:{self.threshold_pct}"


class BudgetWatch:
    """Called with a team id after each run; alerts once per month and threshold crossed."""

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: BudgetAlerts,
        governance: GovernanceStore,
        deliver: Delivery,
        engine: Engine,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._governance = governance
        self._deliver = deliver
        self._engine = engine
        # The alert's workflow (`bot.slack.workflows.register_alerts` sets it).
        self.workflow: Callable[[BudgetAlert], Coroutine[Any, Any, int]] | None = None

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
        # Only the highest threshold crossed is alerted: two instances alerting one each of
        # several thresholds crossed at once would both post. Lower ones passed over never
        # fire later (spend does not go down within a month).
        alert = BudgetAlert(
            team_id=team_id,
            month=date(now.year, now.month, 1),
            threshold_pct=max(crossed),
            spent_usd=spent,
            budget_usd=budget,
            alert_channel=current.alert_channel,
        )
        # Started from an empty context: this runs at the end of a run's workflow, and the
        # alert is a workflow of its own (a child would be a step of the run, and DBOS
        # would record the status read `Engine.start` makes as one too).
        return await asyncio.create_task(self._start(alert), context=contextvars.Context())

    async def _start(self, alert: BudgetAlert) -> int:
        handle = await self._engine.start(alert.workflow_id, self.workflow, alert)
        if handle is None:
            return 0  # alerted already (or being alerted), by this instance or another
        # Racing another instance to the same id, both handles give the one outcome.
        told: int = await handle.get_result()
        return told

    async def send(self, alert: BudgetAlert) -> int:
        """The alert, inside its workflow: each post a step."""
        message = blocks.budget_alert_message(
            spent_usd=alert.spent_usd,
            budget_usd=alert.budget_usd,
            month_label=alert.month.strftime("%B %Y"),
            threshold_pct=alert.threshold_pct,
        )
        return await self._deliver(message, alert.alert_channel, key="alert")


class Digest:
    """Last week's digest, posted once per ISO week across instances (a scheduled workflow)."""

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

    async def post_week(self, when: datetime) -> int:
        """Inside the workflow the schedule fired for `when`: post the digest of the week
        before it to every team that ran something then; returns how many were posted.
        Each team's digest is made and each post sent in steps: a digest resumed after a
        crash posts nothing it had posted."""
        since, until = week_bounds(when - timedelta(days=7))
        teams = await engine.step(
            "digest teams", partial(self._reports.teams_with_runs, since=since, until=until)
        )
        posted = 0
        for team_id in teams:
            message, channel = await engine.step(
                f"digest {team_id}", partial(self._compose, team_id, since, until)
            )
            told = await self._deliver(message, channel, key=f"digest {team_id}")
            posted += min(1, told)
        log.info("weekly digest of %s posted to %d of %d teams", since.date(), posted, len(teams))
        return posted

    async def _compose(
        self, team_id: str, since: datetime, until: datetime
    ) -> tuple[blocks.OutboundMessage, str | None]:
        report = await self._reports.summary(team_id, since=since, until=until)
        votes = await self._feedback.feedback(team_id, since=since, until=until)
        current = await self._governance.budget_settings(team_id, initial_settings(self._settings))
        last_day = (until - timedelta(days=1)).date()
        message = blocks.weekly_digest_message(
            report, first=since.date(), last=last_day, feedback=votes
        )
        return message, current.alert_channel
