"""`/orchestrate`: acknowledged first (Slack gives 3 s), then parsed and handed off.

The text after the command is `help`, `costs [period]`, or a question, which goes to
`Runs.start`. Slack sends it entity-escaped (`&amp;`, `&lt;`, `&gt;`, and mentions or links
as `<…>` markup); it is decoded to what the person typed before anything else reads it, so
the model sees `R&D` and the length limit counts the characters typed, and `blocks` escapes
it again on the way out. Errors a user can fix are answered ephemerally through `respond` (the
command's `response_url`, which works even where the bot cannot post), falling back to
`chat.postEphemeral` when Slack refuses the URL (`bot.slack.replies`). Who may see
workspace-wide figures is decided on the server at every request (`bot.slack.admins`). A
question's run is a workflow whose id is derived from the command's `trigger_id`, so a
captured request replayed within its signature window starts nothing, on whichever instance
it reaches. The run starts ACK_HEADSTART_S after the ack, so that the ack has left first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, assert_never

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import read_period
from bot.slack.admins import is_admin
from bot.slack.deps import Services
from bot.slack.exports import send_calls_csv
from bot.slack.limits import COMMAND, over_limit, too_long_replies
from bot.slack.replies import PrivateReply, private_reply
from bot.slack.requests import RunRequest, ephemeral
from bot.slack.threads import decode

log = logging.getLogger(__name__)
# A question's run starts this long after its ack. Bolt hands an ack back to Slack at its
# next look (every 10 ms), and a run's start is the engine's work on this event loop: started
# at once, the first starts of 50 commands sent together held the last acks back 70-110 ms
# (BENCHMARKS.md, "Acks first"). Held back, the acks of commands that arrive together have
# all left before the first of their runs starts.
ACK_HEADSTART_S = 0.05


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Costs:
    period: str


@dataclass(frozen=True, slots=True)
class CostsCsv:
    period: str


@dataclass(frozen=True, slots=True)
class Ask:
    question: str


@dataclass(frozen=True, slots=True)
class TooLong:
    length: int
    max_chars: int
    question: str = ""


@dataclass(frozen=True, slots=True)
class Mistyped:
    """`costs <period>` followed by more words: a report asked for wrongly, not a question."""

    period: str
    typed: str


Command = Help | Costs | CostsCsv | Ask | TooLong | Mistyped


def parse_command(text: str, *, max_chars: int) -> Command:
    """What the user asked for, from the text after `/orchestrate` as Slack sends it."""
    text = decode(text).strip()
    word, _, rest = text.partition(" ")
    if not text or text.lower() == "help":
        return Help()
    # `costs` and one word is the command (a bad period gets told what to type); with more
    # words ("costs of running Kafka?") it is a question, unless the next word is a period
    # ("costs month extra"): a paid run would answer a report request nobody meant to ask.
    after = rest.split()
    # `costs csv [period]`: the period's calls as a file (admins).
    if word.lower() == "costs" and after and after[0].lower() == "csv" and len(after) <= 2:
        return CostsCsv(after[1] if len(after) == 2 else "month")
    if word.lower() == "costs" and len(after) <= 1:
        return Costs(rest.strip() or "month")
    if word.lower() == "costs" and _is_period(after[0]):
        return Mistyped(period=after[0], typed=text)
    if over_limit(text, max_chars=max_chars):
        return TooLong(len(text), max_chars, text)
    return Ask(text)


def _is_period(word: str) -> bool:
    try:
        read_period(word, now=datetime.now(UTC))
    except ValueError:
        return False
    return True


def register(app: AsyncApp, services: Services) -> None:
    @app.command(COMMAND)
    async def on_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        # Every private answer falls back to chat.postEphemeral if the response URL refuses.
        reply = private_reply(respond, client, command)
        # A replayed question starts nothing: its run's id is derived from the trigger_id,
        # and the engine starts a workflow id once (`Runs.start`). A replayed help or costs
        # request is answered again, privately: harmless, and no table is kept for it.
        max_chars = services.settings.max_question_chars
        parsed = parse_command(command.get("text", ""), max_chars=max_chars)
        try:
            match parsed:
                case Help():
                    await reply(
                        **ephemeral(blocks.help_message(command=COMMAND, max_chars=max_chars))
                    )
                case TooLong(max_chars=limit, question=question):
                    # Given back in full, so nothing typed is lost (`bot.slack.limits`).
                    for page in too_long_replies(question, max_chars=limit):
                        await reply(**ephemeral(page))
                case Mistyped(period=period, typed=typed):
                    message = blocks.mistyped_costs_message(
                        command=COMMAND, period=period, typed=typed
                    )
                    await reply(**ephemeral(message))
                case Costs(period=period):
                    await _costs(services, client, command=command, period=period, respond=reply)
                case CostsCsv(period=period):
                    await send_calls_csv(
                        services, client, command=command, period=period, respond=reply
                    )
                case Ask(question=question):
                    # Started in a task the run registry owns: a shutdown waits for it.
                    ask = _ask(services, command=command, question=question, respond=reply)
                    services.runs.own(ask, name="question")
        except Exception:
            # After the ack Slack shows nothing of a failure: the asker must hear it from us.
            log.exception("could not answer %s for %s", _what(parsed), command.get("user_id"))
            await _apologise(reply, parsed)


def _what(parsed: Command) -> str:
    match parsed:
        case Costs() | CostsCsv():
            return "the costs command"
        case Ask():
            return "a question"
        case Help() | TooLong() | Mistyped():
            return "a help request"
        case _:
            assert_never(parsed)


async def _apologise(reply: PrivateReply, parsed: Command) -> None:
    if isinstance(parsed, Ask):
        message = blocks.run_not_started_message()
    else:
        message = blocks.command_failed_message(
            command=f"{COMMAND} costs" if isinstance(parsed, Costs) else COMMAND,
            what="reading the costs" if isinstance(parsed, Costs) else "answering",
        )
    try:
        await reply(**ephemeral(message))
    except Exception:
        log.exception("could not tell the asker that their command failed")


async def _ask(
    services: Services, *, command: dict[str, Any], question: str, respond: PrivateReply
) -> None:
    """Start the question's run, ACK_HEADSTART_S after the ack. A shutdown meanwhile waits
    for the start (the registry owns this task), and the run resumes after the restart."""
    await asyncio.sleep(ACK_HEADSTART_S)
    try:
        trigger = command.get("trigger_id") or ""
        delivery = f"command:{trigger}" if trigger else None
        await services.runs.start(_request(command, question), respond, delivery=delivery)
    except Exception:
        # Not a silent failure: the asker learns, the operator gets the trace.
        log.exception("could not start a run for %s", command.get("user_id"))
        await _apologise(respond, Ask(question))


def _request(command: dict[str, Any], question: str) -> RunRequest:
    return RunRequest(
        team_id=command["team_id"],
        channel_id=command["channel_id"],
        user_id=command["user_id"],
        question=question,
    )


async def _costs(
    services: Services,
    client: AsyncWebClient,
    *,
    command: dict[str, Any],
    period: str,
    respond: PrivateReply,
) -> None:
    try:
        chosen = read_period(period, now=datetime.now(UTC))
    except ValueError as exc:
        await respond(**ephemeral(blocks.bad_period_message(command=COMMAND, problem=str(exc))))
        return
    admin = await is_admin(services.settings, client, command["user_id"])
    report = await services.reports.summary(
        command["team_id"],
        since=chosen.since,
        until=chosen.until,
        user_id=None if admin else command["user_id"],
    )
    label = blocks.period_label(chosen)
    feedback = None
    if admin:
        feedback = await services.feedback.feedback(
            command["team_id"], since=chosen.since, until=chosen.until
        )
    message = blocks.costs_summary_message(
        report, period_label=label, is_admin=admin, feedback=feedback
    )
    await respond(**ephemeral(message))
