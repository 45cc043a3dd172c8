"""Admins set budgets from App Home: the "Budgets" button opens a modal; its submission is
checked and stored.

Both steps decide on the server, at every request, whether the person is an admin
(`bot.slack.admins`): a member's click opens nothing, and a member's `view_submission` (a
forged one, or a modal opened before a demotion) is answered with an error in the modal and
changes nothing. The modal carries the version of the settings it was filled from (in
`private_metadata`, which Slack returns with the submission and the signature covers); the
save is refused inside its locked transaction if the settings have moved on since, so a
submission takes effect once (a captured one replayed within its signature's five minutes
finds the version it was based on gone) and an admin never undoes a change made after she
opened the form: she is told, in the modal, to reopen it. Values are read from the
submission (`read_form`, a pure function): amounts must be positive decimals with at most
four places, a new channel budget needs both its channel and its amount, thresholds are
whole percentages from 1 to 100; anything wrong is shown under its input
(`response_action: errors`) and nothing is saved. A valid form is
stored in the ledger with its audit trail before the submission is acknowledged (so the
modal closes only once the budgets are in force everywhere), and the admin's Home is
published again so it shows the new budgets and the change.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from blocks.governance import (
    BLOCK_ALERT_CHANNEL,
    BLOCK_ALLOWED,
    BLOCK_NEW_CHANNEL,
    BLOCK_NEW_CHANNEL_BUDGET,
    BLOCK_THRESHOLDS,
    BLOCK_USER,
    BLOCK_WORKSPACE,
    BUDGETS_CALLBACK,
    CHANNEL_BLOCK_PREFIX,
    OPEN_BUDGETS_ACTION,
    VALUE_ACTION,
    Problem,
    changed_since_opened_error,
    field_error,
    not_saved_error,
)
from bot.ledger import BudgetSettings, LedgerUnavailable, SettingsChanged, initial_settings
from bot.settings import MAX_BUDGET_USD
from bot.slack.admins import is_admin
from bot.slack.deps import Services
from bot.slack.home import publish_home

log = logging.getLogger(__name__)
MAX_THRESHOLDS = 10
# A submission without a version (a modal opened before versions existed) matches none.
_UNVERSIONED = "unversioned"
_MONEY_PLACES = 4


def register(app: AsyncApp, services: Services) -> None:
    @app.action(OPEN_BUDGETS_ACTION)
    async def on_open(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        user_id, team_id = _who(body)
        if not await is_admin(services.settings, client, user_id):
            log.warning("%s, not an admin, asked for the budgets modal: refused", user_id)
            return
        defaults = initial_settings(services.settings)
        version = await services.governance.version(team_id)
        current = await services.governance.budget_settings(team_id, defaults)
        modal = blocks.budgets_modal(current, version=version)
        await client.views_open(trigger_id=body["trigger_id"], view=modal)

    @app.view(BUDGETS_CALLBACK)
    async def on_submit(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user_id, team_id = _who(body)
        if not await is_admin(services.settings, client, user_id):
            log.warning("%s, not an admin, submitted the budgets modal: refused", user_id)
            errors = {BLOCK_WORKSPACE: blocks.admins_only_error()}
            await ack(response_action="errors", errors=errors)
            return
        try:
            errors = await _save(services, body=body, view=view)
        except LedgerUnavailable as exc:
            # Answered in the modal, which stays open as typed, rather than left to Slack's
            # own "trouble connecting" after 3 s of silence.
            log.warning("budgets not saved, the ledger is unavailable: %s", exc)
            errors = {BLOCK_WORKSPACE: not_saved_error()}
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        await publish_home(services, client, team_id=team_id, user_id=user_id)


async def _save(
    services: Services, *, body: dict[str, Any], view: dict[str, Any]
) -> dict[str, str]:
    """Check the submitted form and save it; what to show under which input when it is not
    saved (empty when it was). Saved before the ack: once the modal closes, the new budgets
    are in force on every instance (one short transaction, well inside Slack's 3 s)."""
    user_id, team_id = _who(body)
    defaults = initial_settings(services.settings)
    current = await services.governance.budget_settings(team_id, defaults)
    settings, problems = read_form(view.get("state", {}).get("values", {}), current)
    if problems or settings is None:
        return {block: field_error(problem) for block, problem in problems.items()}
    try:
        changes = await services.governance.save(
            team_id,
            settings,
            changed_by=user_id,
            defaults=defaults,
            based_on=str(view.get("private_metadata") or "") or _UNVERSIONED,
        )
    except SettingsChanged:
        log.warning("%s submitted budgets based on older settings: refused", user_id)
        return {BLOCK_WORKSPACE: changed_since_opened_error()}
    log.info("%s changed %d budget settings of %s", user_id, len(changes), team_id)
    return {}


def _who(body: dict[str, Any]) -> tuple[str, str]:
    user = body.get("user") or {}
    team = body.get("team") or {}
    return str(user.get("id", "")), str(team.get("id") or user.get("team_id") or "")


def read_form(
    values: dict[str, Any], current: BudgetSettings
) -> tuple[BudgetSettings | None, dict[str, Problem]]:
    """The settings a submitted budgets modal asks for, or what is wrong, by block id."""
    problems: dict[str, Problem] = {}

    def money(block_id: str) -> Decimal | None:
        amount, problem = _money(_value(values, block_id))
        if problem is not None:
            problems[block_id] = problem
        return amount

    workspace, user = money(BLOCK_WORKSPACE), money(BLOCK_USER)
    channels = {
        block_id.removeprefix(CHANNEL_BLOCK_PREFIX): money(block_id)
        for block_id in values
        if block_id.startswith(CHANNEL_BLOCK_PREFIX)
    }
    new_channel = _selected(values, BLOCK_NEW_CHANNEL)
    new_budget = money(BLOCK_NEW_CHANNEL_BUDGET)
    if new_channel and new_budget is None and BLOCK_NEW_CHANNEL_BUDGET not in problems:
        problems[BLOCK_NEW_CHANNEL_BUDGET] = "channel_without_budget"
    if new_budget is not None and not new_channel:
        problems[BLOCK_NEW_CHANNEL] = "budget_without_channel"
    if new_channel and new_budget is not None:
        channels[new_channel] = new_budget
    thresholds = _thresholds(_value(values, BLOCK_THRESHOLDS))
    if thresholds is None:
        problems[BLOCK_THRESHOLDS] = "bad_thresholds"
    if problems or thresholds is None:
        return None, problems
    return BudgetSettings(
        workspace_monthly_usd=workspace,
        user_daily_usd=user,
        channel_monthly_usd=tuple(sorted((c, a) for c, a in channels.items() if a is not None)),
        alert_thresholds_pct=thresholds,
        alert_channel=_selected(values, BLOCK_ALERT_CHANNEL),
        allowed_channels=tuple(sorted(_selected_many(values, BLOCK_ALLOWED))),
    ), {}


def _entry(values: dict[str, Any], block_id: str) -> dict[str, Any]:
    entry = (values.get(block_id) or {}).get(VALUE_ACTION) or {}
    return entry if isinstance(entry, dict) else {}


def _value(values: dict[str, Any], block_id: str) -> str:
    return str(_entry(values, block_id).get("value") or "").strip()


def _selected(values: dict[str, Any], block_id: str) -> str | None:
    entry = _entry(values, block_id)
    chosen = entry.get("selected_conversation") or entry.get("selected_channel")
    return str(chosen) if chosen else None


def _selected_many(values: dict[str, Any], block_id: str) -> list[str]:
    entry = _entry(values, block_id)
    chosen = entry.get("selected_conversations") or entry.get("selected_channels") or []
    return [str(c) for c in chosen]


def _money(text: str) -> tuple[Decimal | None, Problem | None]:
    if not text:
        return None, None
    try:
        amount = Decimal(text.replace(",", "").removeprefix("$"))
    except InvalidOperation:
        return None, "not_a_number"
    if not amount.is_finite():
        return None, "not_a_number"
    if amount <= 0:
        return None, "not_positive"
    if amount > MAX_BUDGET_USD:  # the same cap the environment's budgets have
        return None, "too_large"
    try:
        if amount != amount.quantize(Decimal(1).scaleb(-_MONEY_PLACES)):
            return None, "too_precise"
    except InvalidOperation:  # too many digits to hold at four places
        return None, "not_a_number"
    return amount, None


def _thresholds(text: str) -> tuple[int, ...] | None:
    words = [w for w in re.split(r"[\s,;%]+", text) if w]
    if not all(w.isdigit() and 1 <= int(w) <= 100 for w in words) or len(words) > MAX_THRESHOLDS:
        return None
    return tuple(sorted({int(w) for w in words}))
