"""The words around `/orchestrate costs csv`: who may ask, where the file went, what failed."""

from __future__ import annotations

from blocks.ephemeral import error_message
from blocks.escape import escape
from blocks.format import format_count
from blocks.message import OutboundMessage, fallback, section


def csv_admins_only_message(*, command: str = "/orchestrate") -> OutboundMessage:
    return error_message(
        f"Only workspace admins can export every call. `{command} costs` shows your own spend."
    )


def csv_comment(*, rows: int, period_label: str) -> str:
    """The upload's comment in the admin's DM (plain text: Slack shows it as typed)."""
    return (
        f"Every orchestrate call, {period_label}: {format_count(rows, 'call')}. "
        "Costs are exact at list prices (9 decimals); an empty cost means the model is unpriced."
    )


def csv_sent_message(*, rows: int, period_label: str) -> OutboundMessage:
    line = (
        f"📎 The CSV of {format_count(rows, 'call')} ({escape(period_label)}) is in your DM "
        "with me."
    )
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def csv_failed_message() -> OutboundMessage:
    return error_message(
        "Slack would not take the CSV upload, so nothing was sent. Try again in a minute; "
        "if it keeps failing, ask an operator to check that the app has the files:write scope."
    )
