"""Buttons on a run's messages: Stop, 👍/👎 feedback (and its "what was wrong?" modal), Retry.

Every click is acknowledged first (Slack gives 3 s; in HTTP mode Bolt has already checked
the request's signature), then decided on the server: the run is looked up in the shared
ledger by the id the button carries and must belong to the clicker's workspace; only its
asker or an admin may stop or retry it, whoever sees the thread may vote. Clicks are
idempotent: the first Stop request is the one recorded (a double click or a second person
changes nothing), a vote is one per person and run (clicking again is counted once;
switching replaces it), a Retry button starts one retry however often it is clicked, and
whichever instances the clicks reach (a second click is told the retry is under way, or has
run). Replies are
ephemeral, through the payload's `response_url`; a click that names no run of the
clicker's workspace, or arrives while the ledger cannot be reached, is answered too; a
"what was wrong?" answer is saved before its modal closes, which stays open saying so (the
text still in it) while the ledger cannot take it.

A run's first message loses its Stop button with the run's final edit. Where that edit never
reached Slack (refused, Slack unreachable past the retries, the instance gone), a Stop click
on the ended run, once Slack answers again, takes the button off: only `STALE_STOP_S` after
the run ended, when its own final edit has long been sent or given up on (an older view
queued after it would overwrite the final one).
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.ledger import LedgerUnavailable, RunInfo, VoteValue
from bot.slack.admins import is_admin
from bot.slack.deps import Services
from bot.slack.poster import describe

log = logging.getLogger(__name__)
# Well past the final edit's worst case: its place in the paced queue (about 80 s with 50
# runs ending at once) plus the retries through an outage (60 s) and the call's timeout.
STALE_STOP_S = 300.0


def register(app: AsyncApp, services: Services) -> None:
    @app.action(blocks.STOP_ACTION)
    async def on_stop(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await _answered(respond, stop(services, body=body, respond=respond))

    @app.action(blocks.FEEDBACK_ACTION)
    async def on_feedback(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await _answered(respond, vote(services, client, body=body, respond=respond))

    @app.action(blocks.RETRY_ACTION)
    async def on_retry(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await _answered(respond, retry(services, body=body, respond=respond))

    @app.view(blocks.WRONG_CALLBACK)
    async def on_what_was_wrong(ack: AsyncAck, body: dict[str, Any]) -> None:
        # Saved before the ack (one short write, well inside Slack's 3 s): if the ledger
        # cannot take it, the modal stays open saying so, with what was typed still in it.
        try:
            await what_was_wrong(services, body=body)
        except LedgerUnavailable as exc:
            log.warning("a vote's reason was not saved, the ledger is unavailable: %s", exc)
            errors = {blocks.WRONG_BLOCK: blocks.reason_not_saved_error()}
            await ack(response_action="errors", errors=errors)
            return
        await ack()


async def _answered(respond: AsyncRespond, handling: Coroutine[Any, Any, None]) -> None:
    """Handle a click; if the ledger cannot be reached (every click is checked and recorded
    there), tell the clicker so instead of leaving the click unanswered."""
    try:
        await handling
    except LedgerUnavailable as exc:
        log.warning("a click was not acted on, the ledger is unavailable: %s", exc)
        await _say(respond, blocks.click_not_recorded_message())


async def _say(respond: AsyncRespond, message: blocks.OutboundMessage) -> None:
    await respond(
        text=message.text,
        blocks=list(message.blocks),
        response_type="ephemeral",
        replace_original=False,
    )


def _clicked(body: dict[str, Any]) -> tuple[str, str, str]:
    """(team id, user id, the action's value) of a block_actions payload."""
    action = (body.get("actions") or [{}])[0]
    team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id", "")
    return str(team), str(body["user"]["id"]), str(action.get("value", ""))


async def _run_of(services: Services, run_id: str, team_id: str) -> RunInfo | None:
    """The run a button names, if it exists in the clicker's workspace (a forged id from
    another workspace is treated as no run at all)."""
    run = await services.run_lookup.get_run(run_id) if run_id else None
    return run if run is not None and run.team_id == team_id else None


async def _may_control(services: Services, run: RunInfo, user_id: str) -> bool:
    return user_id == run.user_id or await is_admin(services.settings, services.client, user_id)


async def stop(services: Services, *, body: dict[str, Any], respond: AsyncRespond) -> None:
    team_id, user_id, run_id = _clicked(body)
    run = await _run_of(services, run_id, team_id)
    if run is None:
        await _say(respond, blocks.not_a_run_message(action="stop"))
        return
    if run.status != "running":
        await _say(respond, blocks.already_over_message(action="stop"))
        if _long_ended(run):
            _drop_stale_stop(services, body)
        return
    if not await _may_control(services, run, user_id):
        await _say(respond, blocks.only_asker_message(asker_id=run.user_id, action="stop"))
        return
    first = await services.stops.request_stop(run_id, user_id)
    # Cancelled in the engine, so the instance that runs it stops it (within about a
    # second), and at once if that is this one.
    await services.runs.stop(run_id, by=user_id)
    if first:
        await _say(respond, blocks.stopping_message())


def _long_ended(run: RunInfo) -> bool:
    ended = run.finished_at
    return ended is not None and (datetime.now(UTC) - ended).total_seconds() >= STALE_STOP_S


def _drop_stale_stop(services: Services, body: dict[str, Any]) -> None:
    """Take the Stop button off the clicked message (an ended run's, which lost its final
    edit). Queued with every other edit; the scheduler logs it if Slack refuses this too."""
    message, container = body.get("message") or {}, body.get("container") or {}
    channel, ts = container.get("channel_id"), container.get("message_ts")
    kept = blocks.without_stop(message.get("blocks"))
    if kept is None or not channel or not ts:
        return
    edit = blocks.OutboundMessage(text=str(message.get("text") or ""), blocks=kept)
    services.poster.enqueue_update(channel, ts, edit, what="an ended run's Stop button")


async def retry(services: Services, *, body: dict[str, Any], respond: AsyncRespond) -> None:
    team_id, user_id, value = _clicked(body)
    parsed = blocks.parse_retry(value)
    run = await _run_of(services, parsed[0], team_id) if parsed else None
    if parsed is None or run is None:
        await _say(respond, blocks.retry_unavailable_message())
        return
    if not await _may_control(services, run, user_id):
        await _say(respond, blocks.only_asker_message(asker_id=run.user_id, action="retry"))
        return
    limit = services.settings.max_question_chars
    if run.question_chars > limit:
        # The same limit as every entry point: a question asked before it applied there, or
        # before it was lowered, is not run again at its full length.
        message = blocks.retry_too_long_message(length=run.question_chars, max_chars=limit)
        await _say(respond, message)
        return
    # The button's identity: the message it is on (the failure it offers to retry). Every
    # click of it, replayed or reaching another instance, names the same retry. A click
    # without one (never seen from Slack) is named by the click itself.
    action = (body.get("actions") or [{}])[0]
    button = str(
        (body.get("container") or {}).get("message_ts")
        or f"click:{action.get('action_ts') or body.get('trigger_id') or ''}"
    )
    await _say(
        respond, await services.runs.retries.retry(run, parsed[1], by=user_id, button=button)
    )


async def vote(
    services: Services, client: AsyncWebClient, *, body: dict[str, Any], respond: AsyncRespond
) -> None:
    team_id, user_id, value = _clicked(body)
    parsed = blocks.parse_vote(value)
    run = await _run_of(services, parsed[1], team_id) if parsed else None
    if parsed is None or run is None:
        log.warning("a feedback click named no run of its workspace")
        await _say(respond, blocks.vote_unavailable_message())
        return
    chosen: VoteValue = 1 if parsed[0] == blocks.UP else -1
    previous = await services.feedback.vote(run.id, user_id, chosen)
    if chosen == -1 and previous != -1:
        # First, while the click's trigger is fresh (Slack honours it for 3 seconds).
        await _ask_what_was_wrong(client, body, run.id)
    before = None if previous is None else (blocks.UP if previous == 1 else blocks.DOWN)
    await _say(respond, blocks.feedback_thanks_message(vote=parsed[0], previous=before))


async def _ask_what_was_wrong(client: AsyncWebClient, body: dict[str, Any], run_id: str) -> None:
    """Offer the optional "what was wrong?" modal; a trigger that expired costs only that."""
    try:
        await client.views_open(
            trigger_id=body["trigger_id"], view=blocks.what_was_wrong_modal(run_id)
        )
    except SlackApiError as exc:
        log.info("could not open the what-was-wrong modal: %s", describe(exc))


async def what_was_wrong(services: Services, *, body: dict[str, Any]) -> None:
    view = body.get("view") or {}
    run_id = str(view.get("private_metadata", ""))
    values = (view.get("state") or {}).get("values") or {}
    typed = (values.get(blocks.WRONG_BLOCK) or {}).get(blocks.WRONG_INPUT) or {}
    reason = str(typed.get("value") or "").strip()
    if run_id and reason:
        await services.feedback.set_vote_reason(run_id, str(body["user"]["id"]), reason)
