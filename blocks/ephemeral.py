"""Messages only the person who typed the command sees: help, and errors that say what to do.

`help_message` explains the command, with examples; `error_message` wraps any error sentence,
and the named builders write the common ones (a question over the limit, a channel the bot
cannot post in, a refused budget) with the figures a user needs to act. Text passed in is
escaped like any other, so an error that quotes user input cannot ping or link.
"""

from __future__ import annotations

from collections.abc import Sequence

from blocks.escape import channel_mention, escape, user_mention
from blocks.format import format_usd
from blocks.message import OutboundMessage, context, fallback, paginate, section, sections
from blocks.split import clip
from blocks.types import BudgetRefusalView, BudgetStopView

MISTYPED_ECHO_LIMIT = 2_000
EXAMPLE_QUESTIONS = (
    "Design a REST API for a social network",
    "How should we add rate limiting to our Flask service?",
    "Plan a zero-downtime migration from MySQL to PostgreSQL",
)


def command_usage(command: str) -> str:
    """`/orchestrate <question>` as inline code, the placeholder's brackets escaped too."""
    return f"`{escape(command)} {escape('<question>')}`"


def help_message(*, command: str = "/orchestrate", max_chars: int) -> OutboundMessage:
    """Usage, example questions, and the `costs` subcommand (whole workspace for admins)."""
    cmd = escape(command)
    usage = "\n".join(
        [
            "*How to use it*",
            f"{command_usage(command)} — a question of up to {max_chars:,} characters",
            f"`{cmd} help` — this message",
            f"`{cmd} costs [today|week|month|last-month|7d|2026-11-01..2026-11-15]` — what "
            "runs cost: your own, or the whole workspace for admins (default: this month; "
            "week is the last 7 days)",
            f"`{cmd} costs csv [period]` — admins: every call of the period as a CSV file "
            "in your DM",
            "`@orchestrate &lt;question&gt;` in a channel — the same, in that message's thread",
            "`@orchestrate &lt;follow-up&gt;` in a run's thread — a question or critique (Sonnet), "
            "one part redone or added (Haiku), or a rethink (Opus); billed like a run",
            "*Orchestrate this thread* (message menu) — plan what a discussion thread says",
        ]
    )
    examples = "*Examples*\n" + "\n".join(f"• `{cmd} {escape(q)}`" for q in EXAMPLE_QUESTIONS)
    intro = (
        f"*{cmd}* — Opus plans a strategy, Haiku illustrates each part in parallel, "
        "Sonnet reviews the lot. Every answer ends with its bill."
    )
    note = (
        "Answers arrive in the channel, threaded under the strategy. "
        "In a private channel, invite me first with `/invite @orchestrate`."
    )
    return OutboundMessage(
        text=fallback(
            f"{command_usage(command)} — up to {max_chars:,} characters. `{cmd} help` for more."
        ),
        blocks=(section(intro), section(usage), section(examples), context(note)),
    )


def error_message(text: str) -> OutboundMessage:
    """An ephemeral error: `⚠ text`, escaped (backticks still mark commands as code)."""
    line = f"⚠ {escape(text)}"
    return OutboundMessage(text=fallback(line), blocks=tuple(sections(line)))


def mistyped_costs_message(*, command: str, period: str, typed: str) -> OutboundMessage:
    """`/orchestrate costs month extra`: say what to type; nothing was run or spent."""
    cmd = escape(command)
    line = (
        f"⚠ `{cmd} costs` takes one period, so nothing was run. For the report, type "
        f"`{cmd} costs {escape(period)}`. To ask a question that starts with “costs”, "
        f"word it another way (“What costs …”). You typed:"
    )
    return OutboundMessage(
        text=fallback(f"{cmd} costs takes one period: type {cmd} costs {escape(period)}"),
        # A report request is a few words; a runaway one is shown in part, within one message.
        blocks=(section(line), *sections(_code(clip(typed, MISTYPED_ECHO_LIMIT)))),
    )


def _code(typed: str) -> str:
    """What someone typed, as a code block: inert, and copied back exactly."""
    return f"```{escape(typed)}```"


def question_too_long_messages(
    *, length: int, max_chars: int, question: str
) -> list[OutboundMessage]:
    """The question is over the limit: say so, and give it back (as code, so it copies back
    exactly) so nothing typed is lost; as many replies as its length needs. The same words
    for every way of asking (the command, a mention, a follow-up in a thread)."""
    line = f"{too_long_line(length=length, max_chars=max_chars)} Here is what you typed:"
    return paginate(
        sections(_code(question)),
        title=lambda page, pages: [section(line if page == 1 else "(continued)")],
        tail=[],
        text=lambda page, pages: line if page == 1 else "Your question (continued)",
    )


def too_long_line(*, length: int, max_chars: int, whose: str = "Your") -> str:
    """The one sentence every entry point says a question over the limit with."""
    return (
        f"⚠ {whose} question is {length:,} characters; the limit is {max_chars:,}. "
        "Shorten it and ask again."
    )


def retry_too_long_message(*, length: int, max_chars: int) -> OutboundMessage:
    """A Retry of a run whose question is over today's limit (asked before the limit
    applied to its entry point, or before the limit was lowered): nothing is run."""
    line = escape(too_long_line(length=length, max_chars=max_chars, whose="This run's"))
    return OutboundMessage(text=fallback(line), blocks=tuple(sections(line)))


def channel_unavailable_message(*, error: str, bot_handle: str = "@orchestrate") -> OutboundMessage:
    """Why the bot could not open a run's thread here, by Slack's error code, and what to do."""
    if error in {"not_in_channel", "channel_not_found"}:
        # Only advice people can follow: the app's Messages tab is read-only (it carries the
        # budget alerts), so "message me directly" would send them nowhere.
        return error_message(
            "I can't post in this conversation. In a private channel, invite me with "
            f"`/invite {bot_handle}` and run the command again. In a direct message between "
            "people, which I can't join, run it in a channel I'm in."
        )
    if error == "is_archived":
        return error_message("This channel is archived; run the command in an active channel.")
    return error_message(f"Slack would not let me post here ({error}). Try another channel.")


def run_not_started_message() -> OutboundMessage:
    """Our own failure before a run began: nothing was spent."""
    return error_message(
        "Something went wrong on our side before the run started; nothing was spent. "
        "Try again in a minute."
    )


def command_failed_message(*, command: str, what: str) -> OutboundMessage:
    """Our own failure while answering a command that starts no run (`costs`, `help`)."""
    return error_message(
        f"Sorry, something went wrong on our side while {what}; it has been logged for the "
        f"operators. Try `{command}` again in a minute, or ask an admin if it keeps failing."
    )


def wrong_workspace_message() -> OutboundMessage:
    """A request from a workspace this installation does not serve."""
    return error_message(
        "orchestrate is not installed for this workspace, so it cannot answer here. "
        "Ask an admin of this workspace to install it."
    )


def unbounded_budget_message() -> OutboundMessage:
    """A budget is set but a model has no list price, so no run can be bounded."""
    return error_message(unbounded_budget_reason())


def unbounded_budget_reason() -> str:
    """Why an unpriced model's call may not run under a budget (plain text)."""
    return (
        "A budget is set, but a configured model has no list price, so this run's cost "
        "cannot be bounded. Ask an operator to add it to PRICES_FILE."
    )


def bad_period_message(*, command: str, problem: str) -> OutboundMessage:
    """`/orchestrate costs <period>` with a period we cannot read."""
    return error_message(f"`{command} costs`: {problem}.")


_BUDGET_NAMES = {
    "user_daily": "your daily",
    "channel_monthly": "this channel's monthly",
    "workspace_monthly": "this workspace's monthly",
}


def budget_refused_message(
    refusal: BudgetRefusalView, *, admins: Sequence[str] = (), command: str = "/orchestrate"
) -> OutboundMessage:
    """A run refused by a budget, with what would help: its figures, when it resets, and
    who can raise it.

    The asker's own daily budget is theirs to see in full. The workspace's and a channel's
    figures are not: whoever is refused by those, member or admin, is told only what their
    run could cost (admins see the month with `costs`, where admin rights are checked).
    """
    likely = format_usd(refusal.worst_case_usd)
    if refusal.budget == "user_daily":
        line = (
            f"⚠ This run could cost up to {likely}, but your daily budget "
            f"of {format_usd(refusal.limit_usd)} has {format_usd(refusal.left_usd)} left "
            f"({format_usd(refusal.spent_usd)} spent, {format_usd(refusal.reserved_usd)} held "
            "by your runs in progress)."
        )
    else:
        line = (
            f"⚠ This run could cost up to {likely}, more than is left of "
            f"{_BUDGET_NAMES[refusal.budget]} budget. Admins can see the month with "
            f"`{escape(command)} costs`."
        )
    return OutboundMessage(
        text=fallback(line), blocks=(*sections(line), context(_what_helps(refusal, admins)))
    )


def _what_helps(refusal: BudgetRefusalView, admins: Sequence[str]) -> str:
    parts = []
    if refusal.resets_at is not None:
        parts.append(f"It resets {refusal.resets_at:%Y-%m-%d %H:%M} UTC.")
    if admins:
        who = ", ".join(user_mention(a) for a in list(admins)[:10])
        parts.append(f"To raise it, ask an admin: {who}.")
    else:
        parts.append("To raise it, ask a workspace admin.")
    return " ".join(parts)


def budget_stop_reason(stop: BudgetStopView) -> str:
    """Why a model call was not made (plain text; the thread escapes it): the budget it would
    have passed. Used up, or with too little left for what the call could cost while other
    calls hold the rest."""
    which = _BUDGET_NAMES[stop.budget].replace("your", "the asker's")
    figures = (
        f"{format_usd(stop.spent_usd)} spent or held by calls in progress, "
        f"this run {format_usd(stop.run_cost_usd)}"
    )
    if stop.spent_usd >= stop.limit_usd:
        state = f"is used up ({figures})"
    else:
        state = (
            f"has too little left for this call, which could cost up to "
            f"{format_usd(stop.call_worst_usd)} ({figures})"
        )
    return (
        f"{which} budget of {format_usd(stop.limit_usd)} {state}, so the model call was not "
        f"made. It resets {stop.resets_at:%Y-%m-%d %H:%M} UTC."
    )


def channel_not_allowed_message(allowed: Sequence[str]) -> OutboundMessage:
    """`/orchestrate` (or a mention) in a channel outside the admins' allow-list."""
    where = ", ".join(channel_mention(c) for c in list(allowed)[:20])
    line = f"⚠ orchestrate is not enabled in this channel. It works in {where}."
    return OutboundMessage(text=fallback(line), blocks=tuple(sections(line)))
