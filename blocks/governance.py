"""Budgets as admins see and set them: the App Home section, the modal, and its error messages.

`budgets_home_blocks` shows an admin the budgets in force and the latest changes, with the
"Budgets" button that opens `budgets_modal`. The modal holds the workspace's monthly budget,
the per-user daily budget, one row per channel budget (emptying a row removes it) plus one row
to add a channel, the soft alert thresholds, the alert channel and the channels where the app
may be used. Its block ids are the contract with the handler that reads the submission
(`BLOCK_*`, `CHANNEL_BLOCK_PREFIX`); `field_error` words what is wrong with one input, shown
under it by Slack (`response_action: errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal, Protocol

from blocks.escape import channel_mention, escape, user_mention
from blocks.format import format_usd
from blocks.message import Block, context, fields_section, header, section

OPEN_BUDGETS_ACTION = "orchestrate.budgets.open"
BUDGETS_CALLBACK = "orchestrate.budgets"
VALUE_ACTION = "value"
BLOCK_WORKSPACE = "workspace_monthly"
BLOCK_USER = "user_daily"
CHANNEL_BLOCK_PREFIX = "channel:"
BLOCK_NEW_CHANNEL = "new_channel"
BLOCK_NEW_CHANNEL_BUDGET = "new_channel_budget"
BLOCK_THRESHOLDS = "thresholds"
BLOCK_ALERT_CHANNEL = "alert_channel"
BLOCK_ALLOWED = "allowed_channels"
MAX_CHANNEL_ROWS = 30  # 2 blocks each; the modal's other blocks keep it under Slack's 100
CHANGES_SHOWN = 5
_CONVERSATIONS = {"include": ["public", "private"], "exclude_bot_users": True}

Problem = Literal[
    "not_a_number",
    "not_positive",
    "too_large",
    "too_precise",
    "budget_without_channel",
    "channel_without_budget",
    "bad_thresholds",
]


class BudgetSettingsView(Protocol):
    @property
    def workspace_monthly_usd(self) -> Decimal | None: ...
    @property
    def user_daily_usd(self) -> Decimal | None: ...
    @property
    def channel_monthly_usd(self) -> Sequence[tuple[str, Decimal]]: ...
    @property
    def alert_thresholds_pct(self) -> Sequence[int]: ...
    @property
    def alert_channel(self) -> str | None: ...
    @property
    def allowed_channels(self) -> Sequence[str]: ...


class SettingChangeView(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def old_value(self) -> str | None: ...
    @property
    def new_value(self) -> str | None: ...
    @property
    def changed_by(self) -> str: ...
    @property
    def changed_at(self) -> Any: ...


def admins_only_error() -> str:
    """Shown in the modal when someone who is not an admin submits it: nothing was saved."""
    return "Only workspace admins can change budgets; nothing was saved."


def changed_since_opened_error() -> str:
    """Shown in the modal when the budgets were saved by someone (or something) else after
    it was opened, or when a submission arrives a second time: nothing was saved."""
    return (
        "The budgets changed since you opened this form, so nothing was saved. "
        "Close it and reopen Budgets from App Home to see them as they are now."
    )


def not_saved_error() -> str:
    """Shown in the modal when the ledger cannot take the budgets right now: the form stays
    open, as typed, to be saved again."""
    return (
        "The budgets could not be saved: the bot cannot reach its ledger right now. "
        "Try Save again in a minute."
    )


def field_error(problem: Problem) -> str:
    """What to fix in one input of the budgets modal."""
    return {
        "not_a_number": "Enter an amount in US dollars, like 25 or 12.50, or leave it empty.",
        "not_positive": "Enter an amount above $0, or leave it empty for no budget.",
        "too_large": "Enter at most $1,000,000, or leave it empty for no budget.",
        "too_precise": "Use at most 4 decimal places (hundredths of a cent).",
        "budget_without_channel": "Pick the channel this budget is for.",
        "channel_without_budget": "Enter this channel's monthly budget.",
        "bad_thresholds": "Enter whole percentages from 1 to 100, like 50, 80, 100.",
    }[problem]


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _money_input(block_id: str, label: str, amount: Decimal | None, hint: str) -> Block:
    element: dict[str, Any] = {
        "type": "number_input",
        "action_id": VALUE_ACTION,
        "is_decimal_allowed": True,
        "placeholder": _plain("no budget"),
    }
    if amount is not None:
        element["initial_value"] = str(amount)
    return _optional_input(block_id, label, hint, element)


def _optional_input(block_id: str, label: str, hint: str, element: dict[str, Any]) -> Block:
    """An input block the admin may leave empty, with its label and hint."""
    return {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": _plain(label),
        "hint": _plain(hint),
        "element": element,
    }


def _conversation_input(block_id: str, label: str, initial: str | None, hint: str) -> Block:
    element: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": VALUE_ACTION,
        "filter": _CONVERSATIONS,
        "placeholder": _plain("Pick a channel"),
    }
    if initial:
        element["initial_conversation"] = initial
    return _optional_input(block_id, label, hint, element)


def budgets_modal(settings: BudgetSettingsView, *, version: str = "") -> dict[str, Any]:
    """The modal (`views.open`) an admin sets budgets in, filled with what is in force;
    `version` (the settings' version it was filled from) comes back with the submission in
    `private_metadata`, so a submission based on older settings can be refused."""
    blocks: list[Block] = [
        section("Amounts are in US dollars at list prices. Leave a budget empty for none."),
        _money_input(BLOCK_WORKSPACE, "Workspace budget per month", settings.workspace_monthly_usd,
                     "Counts every run in the workspace in the calendar month (UTC)."),
        _money_input(BLOCK_USER, "Budget per person per day", settings.user_daily_usd,
                     "Counts each person's runs in the UTC day."),
    ]  # fmt: skip
    for channel, amount in list(settings.channel_monthly_usd)[:MAX_CHANNEL_ROWS]:
        blocks.append(section(f"*Channel budget* for {channel_mention(channel)}"))
        blocks.append(
            _money_input(CHANNEL_BLOCK_PREFIX + channel, "Per month (empty removes it)", amount,
                         "Counts every run started in this channel in the calendar month.")
        )  # fmt: skip
    blocks += [
        _conversation_input(BLOCK_NEW_CHANNEL, "Add a channel budget: channel", None,
                            "Pick a channel and enter its monthly budget below."),
        _money_input(BLOCK_NEW_CHANNEL_BUDGET, "Add a channel budget: per month", None,
                     "The monthly budget for the channel picked above."),
        _optional_input(BLOCK_THRESHOLDS, "Alert at these shares of the monthly budget (%)",
                        "Each is posted once a month. Empty: no alerts.", {
            "type": "plain_text_input",
            "action_id": VALUE_ACTION,
            "initial_value": ", ".join(str(t) for t in settings.alert_thresholds_pct),
        }),
        _conversation_input(BLOCK_ALERT_CHANNEL, "Alert channel", settings.alert_channel,
                            "Alerts and the weekly digest go here; none: admins' DMs."),
        _allowed_input(settings.allowed_channels),
    ]  # fmt: skip
    return {
        "type": "modal",
        "callback_id": BUDGETS_CALLBACK,
        "private_metadata": version,
        "title": _plain("Budgets"),
        "submit": _plain("Save"),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def _allowed_input(allowed: Sequence[str]) -> Block:
    element: dict[str, Any] = {
        "type": "multi_conversations_select",
        "action_id": VALUE_ACTION,
        "filter": _CONVERSATIONS,
        "placeholder": _plain("Everywhere"),
    }
    if allowed:
        element["initial_conversations"] = list(allowed)
    return _optional_input(
        BLOCK_ALLOWED,
        "Channels where orchestrate may be used",
        "Empty: every channel it is in.",
        element,
    )


def budgets_home_blocks(
    settings: BudgetSettingsView, changes: Sequence[SettingChangeView]
) -> list[Block]:
    """An admin's Home section: the budgets in force, the last changes, the Budgets button."""
    fields = [
        f"*Workspace per month*\n{_budget(settings.workspace_monthly_usd)}",
        f"*Per person per day*\n{_budget(settings.user_daily_usd)}",
        f"*Alerts at*\n{_thresholds(settings.alert_thresholds_pct)}",
        f"*Alerts go to*\n{_alert_target(settings.alert_channel)}",
        f"*Channel budgets*\n{_channel_budgets(settings.channel_monthly_usd)}",
        f"*Where it may be used*\n{_allowed(settings.allowed_channels)}",
    ]
    button = {
        "type": "actions",
        "block_id": "orchestrate.budgets",
        "elements": [
            {
                "type": "button",
                "action_id": OPEN_BUDGETS_ACTION,
                "text": _plain("Budgets"),
                "style": "primary",
            }
        ],
    }
    return [header("Budgets"), fields_section(fields), *_changes(changes), button]


def _budget(amount: Decimal | None) -> str:
    return "none" if amount is None else format_usd(amount)


def _thresholds(thresholds: Sequence[int]) -> str:
    return ", ".join(f"{t}%" for t in thresholds) if thresholds else "no alerts"


def _alert_target(channel: str | None) -> str:
    return channel_mention(channel) if channel else "admins' DMs"


def _channel_budgets(budgets: Sequence[tuple[str, Decimal]]) -> str:
    if not budgets:
        return "none"
    shown = [f"{channel_mention(c)} {format_usd(a)}" for c, a in list(budgets)[:10]]
    more = len(budgets) - len(shown)
    return "\n".join(shown) + (f"\n… and {more} more" if more > 0 else "")


def _allowed(channels: Sequence[str]) -> str:
    return ", ".join(channel_mention(c) for c in channels) if channels else "every channel"


_LABELS = {
    "workspace_monthly_usd": "workspace budget per month",
    "user_daily_usd": "budget per person per day",
    "alert_thresholds_pct": "alert thresholds",
    "alert_channel": "alert channel",
    "allowed_channels": "allowed channels",
}


def _changes(changes: Sequence[SettingChangeView]) -> list[Block]:
    if not changes:
        return [context("No changes yet: the budgets above are the initial values.")]
    lines = [_change_line(c) for c in list(changes)[:CHANGES_SHOWN]]
    return [section("*Last changes*\n" + "\n".join(lines))]


def _change_line(change: SettingChangeView) -> str:
    if change.key.startswith("channel_monthly_usd:"):
        what = f"budget for {channel_mention(change.key.split(':', 1)[1])}"
    else:
        what = _LABELS.get(change.key, escape(change.key))
    when = f"{change.changed_at:%Y-%m-%d %H:%M} UTC"
    old, new = _value(change.key, change.old_value), _value(change.key, change.new_value)
    return f"{when} · {user_mention(change.changed_by)} changed the {what}: {old} → {new}"


def _value(key: str, value: str | None) -> str:
    if not value:
        return "none"
    if key in {"alert_channel", "allowed_channels"}:
        return ", ".join(channel_mention(c) for c in value.split(","))
    if key == "alert_thresholds_pct":
        return ", ".join(f"{t}%" for t in value.split(","))
    try:
        return format_usd(Decimal(value))
    except ArithmeticError:
        return escape(value)
