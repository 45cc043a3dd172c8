"""Admission: whether a run may start, and the budgets it goes on under.

Before any model is called, a run (a follow-up and a Retry too) is checked against the
admins' channel allow-list and reserves its worst case against the budgets, in one ledger
transaction, so racing instances cannot overspend. Budgets are read from the ledger at every
run, so an admin's change applies at once on every instance. A refusal is the reply saying
why, for the asker alone. Admitted, each model call then holds its own worst case
(`LedgerBudget`) under the budgets the run was admitted under.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from slack_sdk.errors import SlackApiError

import blocks
from bot.core.budget import CallBudget, CallRefused
from bot.ledger import (
    BudgetRefusal,
    BudgetSettings,
    BudgetStop,
    CallHold,
    GovernanceStore,
    Limits,
    RunLedger,
    initial_settings,
)
from bot.logs import fields
from bot.settings import Settings
from bot.slack.admins import workspace_admins
from bot.slack.metrics import Metrics
from bot.slack.poster import Poster, slack_error
from bot.slack.requests import RunRequest

log = logging.getLogger(__name__)


class LedgerBudget:
    """A run's `CallBudget`: each model call holds its worst case in the ledger before it
    starts (`RunLedger.reserve_call`, atomic across instances), under the budgets the run
    was admitted under; the call's record settles the hold, and the run's end releases
    what is left. The one place the call path asks the ledger about budgets."""

    def __init__(self, ledger: RunLedger, run_id: str, limits: Limits) -> None:
        self._ledger = ledger
        self._run_id = run_id
        self._limits = limits

    async def hold(self, worst_case_usd: Decimal | None) -> str | None:
        if not self._limits.any:
            return None
        if worst_case_usd is None:  # admission refuses unpriced models under a budget
            raise CallRefused(blocks.unbounded_budget_reason())
        held = await self._ledger.reserve_call(
            self._run_id, worst_case_usd=worst_case_usd, limits=self._limits
        )
        if isinstance(held, BudgetStop):
            raise CallRefused(blocks.budget_stop_reason(held))
        return held.key

    async def release(self, key: str) -> None:
        await self._ledger.release_call(CallHold(self._run_id, key, Decimal(0)))


class Admission:
    """Admits the runs of one process."""

    def __init__(
        self,
        *,
        ledger: RunLedger,
        governance: GovernanceStore,
        poster: Poster,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._ledger = ledger
        self._governance = governance
        self._poster = poster
        self._settings = settings
        self._metrics = metrics

    async def admit(
        self,
        request: RunRequest,
        worst_case: Decimal | None,
        *,
        run_id: str,
        models: str = "",
    ) -> Limits | blocks.OutboundMessage:
        """The budgets the run goes on under, or the reply saying why it may not start: a
        channel outside the admins' allow-list, or a budget. `worst_case` None means a model
        is unpriced: refused when budgets are set. Admitting a run id again (a resumed
        workflow, a racing click) reserves nothing more: the first decision stands."""
        current = await self.allowed(request.team_id, request.channel_id)
        if isinstance(current, blocks.OutboundMessage):
            not_started(request, None, "channel not allowed", "outside the admins' allow-list")
            return current
        limits = Limits(
            current.user_daily_usd,
            current.workspace_monthly_usd,
            current.channel_budget(request.channel_id),
        )
        if worst_case is None and limits.any:
            not_started(request, None, "budget", "a model is unpriced, so no worst case")
            self._metrics.refused("unpriced")
            return blocks.unbounded_budget_message()
        result = await self._ledger.reserve_run(
            team_id=request.team_id,
            channel_id=request.channel_id,
            user_id=request.user_id,
            question=request.question,
            worst_case_usd=worst_case or Decimal(0),
            user_budget=limits.user_daily,
            workspace_budget=limits.workspace_monthly,
            parent_run_id=request.parent_run_id,
            channel_budget=limits.channel_monthly,
            models=models,
            run_id=run_id,
        )
        if isinstance(result, BudgetRefusal):
            not_started(request, result.run_id, "budget", f"{result.budget} budget")
            self._metrics.refused(result.budget)
            return blocks.budget_refused_message(result, admins=await self._admins())
        return limits

    async def allowed(
        self, team_id: str, channel_id: str
    ) -> BudgetSettings | blocks.OutboundMessage:
        """The team's budget settings, or, for a channel outside the admins' allow-list, the
        private note naming the channels allowed (what a run, or a bare mention's help, is
        answered with there)."""
        current = await self._governance.budget_settings(team_id, initial_settings(self._settings))
        if not current.allows(channel_id):
            return blocks.channel_not_allowed_message(current.allowed_channels)
        return current

    def budget(self, run_id: str, limits: Limits) -> CallBudget:
        """What a run's calls hold their worst case against (see `LedgerBudget`)."""
        return LedgerBudget(self._ledger, run_id, limits)

    async def _admins(self) -> list[str]:
        try:
            return await workspace_admins(self._settings, self._poster.client)
        except SlackApiError as exc:
            log.warning("could not list admins for a refusal: %s", slack_error(exc))
            return sorted(self._settings.admins)


def not_started(request: RunRequest, run_id: str | None, why: str, detail: str) -> None:
    log.info(
        "run not started: %s",
        why,
        extra=fields(
            run_id=run_id,
            team=request.team_id,
            channel=request.channel_id,
            user=request.user_id,
            reason=why,
            detail=detail,
        ),
    )
