"""The Slack edge: ack, parse, hand off, render. One short handler per Slack entry point.

`/orchestrate` is acknowledged before anything else (Slack gives 3 s), then parsed: help,
`costs [period]`, or a question, which goes to `Runs.start`. Errors a user can fix are
answered ephemerally through `respond` (the command's `response_url`, which works even
where the bot cannot post). Admin views are decided here, on the server, at every request.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import parse_period
from bot.slack.deps import Services
from bot.slack.poster import describe
from bot.slack.runs import RunRequest, ephemeral

log = logging.getLogger(__name__)
COMMAND = "/orchestrate"
HOME_DAYS = 30
EVENTS = ("app_home_opened", "app_mention")  # what manifest.yml subscribes to
# The Web API methods the bot calls, with the bot scope each needs (checked against
# manifest.yml by a test, so a new call cannot ship without its scope).
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "conversations.join": "channels:join",
    "users.info": "users:read",
    "users.list": "users:read",
    "views.publish": None,
    "auth.test": None,
}


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Costs:
    period: str


@dataclass(frozen=True, slots=True)
class Ask:
    question: str


@dataclass(frozen=True, slots=True)
class Invalid:
    message: str


Command = Help | Costs | Ask | Invalid


def parse_command(text: str, *, max_chars: int) -> Command:
    """What the user asked for, from the text after `/orchestrate`."""
    text = text.strip()
    word, _, rest = text.partition(" ")
    if not text or text.lower() == "help":
        return Help()
    # `costs` and one word is the command (a bad period gets told what to type); with more
    # words ("costs of running Kafka?") it is a question.
    if word.lower() == "costs" and len(rest.split()) <= 1:
        return Costs(rest.strip() or "month")
    if len(text) > max_chars:
        return Invalid(
            f"Your question is {len(text):,} characters; the limit is {max_chars:,}. "
            "Shorten it and try again."
        )
    return Ask(text)


def register(app: AsyncApp, services: Services) -> None:
    """Attach every listener to `app`."""
    seen_events: OrderedDict[str, None] = OrderedDict()

    @app.command(COMMAND)
    async def on_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        parsed = parse_command(
            command.get("text", ""), max_chars=services.settings.max_question_chars
        )
        match parsed:
            case Help():
                message = blocks.help_message(
                    command=COMMAND, max_chars=services.settings.max_question_chars
                )
                await respond(**ephemeral(message))
            case Invalid(message=text):
                await respond(**ephemeral(blocks.error_message(text)))
            case Costs(period=period):
                await _costs(services, client, command, period, respond)
            case Ask(question=question):
                try:
                    await services.runs.start(_request(command, question), respond)
                except Exception:
                    # Not a silent failure: the asker learns, the operator gets the trace.
                    log.exception("could not start a run for %s", command.get("user_id"))
                    await respond(
                        **ephemeral(
                            blocks.error_message(
                                "Something went wrong on our side before the run started; nothing "
                                "was spent. Try again in a minute."
                            )
                        )
                    )

    @app.event("app_home_opened")
    async def on_home(
        event: dict[str, Any], context: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if event.get("tab", "home") != "home":
            return
        await _publish_home(services, client, str(context.get("team_id") or ""), event["user"])

    @app.event("app_mention")
    async def on_mention(
        body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        # Bolt does not de-duplicate Events API retries; a retry must not post twice.
        if _seen(seen_events, str(body.get("event_id", ""))):
            return
        hint = blocks.help_message(command=COMMAND, max_chars=services.settings.max_question_chars)
        await services.poster.post(
            event["channel"], hint, thread_ts=event.get("thread_ts") or event["ts"]
        )


def _request(command: dict[str, Any], question: str) -> RunRequest:
    return RunRequest(
        team_id=command["team_id"],
        channel_id=command["channel_id"],
        user_id=command["user_id"],
        question=question,
    )


def _seen(seen: OrderedDict[str, None], event_id: str, keep: int = 10_000) -> bool:
    if not event_id:
        return False
    if event_id in seen:
        return True
    seen[event_id] = None
    if len(seen) > keep:
        seen.popitem(last=False)
    return False


async def is_admin(services: Services, client: AsyncWebClient, user_id: str) -> bool:
    """Workspace admins and owners (asked of Slack each time) and ORCHESTRATE_ADMINS."""
    if user_id in services.settings.admins:
        return True
    try:
        user = (await client.users_info(user=user_id))["user"]
    except SlackApiError as exc:
        log.warning("users.info failed for %s: %s", user_id, describe(exc))
        return False  # when in doubt, show only the user's own figures
    return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


async def _costs(
    services: Services,
    client: AsyncWebClient,
    command: dict[str, Any],
    period: str,
    respond: AsyncRespond,
) -> None:
    try:
        since, until = parse_period(period, now=datetime.now(UTC))
    except ValueError as exc:
        await respond(**ephemeral(blocks.error_message(f"`{COMMAND} costs`: {exc}.")))
        return
    admin = await is_admin(services, client, command["user_id"])
    report = await services.ledger.summary(
        command["team_id"],
        since=since,
        until=until,
        user_id=None if admin else command["user_id"],
    )
    message = blocks.costs_summary_message(report, period_label=period, is_admin=admin)
    await respond(**ephemeral(message))


async def _publish_home(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str
) -> None:
    admin = await is_admin(services, client, user_id)
    scope = None if admin else user_id
    now = datetime.now(UTC)
    # The summary and the day-by-day table cover the same 30 days.
    since, until = parse_period(f"{HOME_DAYS}d", now=now)
    report = await services.ledger.summary(team_id, since=since, until=until, user_id=scope)
    daily = await services.ledger.daily(team_id, days=HOME_DAYS, user_id=scope, today=now.date())
    view = blocks.home_view(
        report=report,
        daily=daily,
        is_admin=admin,
        command=COMMAND,
        period_label=f"last {HOME_DAYS} days",
    )
    await client.views_publish(user_id=user_id, view=view)


__all__ = ["parse_command", "register"]
