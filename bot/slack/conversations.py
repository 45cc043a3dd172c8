"""Conversations in threads: what a mention or the message shortcut asks, answered in order.

`Conversations.accept` takes one request (a mention, or "Orchestrate this thread") and answers
it in a task this object owns. Requests for one thread are answered one at a time, in the order
they arrived (one lock per thread; asyncio locks are fair). Answering reads the thread first:
a thread the bot cannot read gets one ephemeral answer saying so. Then:

* a thread without a run (a channel message, or a team's discussion) starts a run in that
  thread, the discussion so far given to the strategy model as context;
* a run's thread gets a follow-up, routed by `bot.core.conversation.route`: a question or
  critique goes to the review model, one component redone or added to the examples model,
  a re-plan to the whole pipeline (a new strategy version with its examples and review).

Every follow-up is its own run in the ledger, for the user who asked, linked to the thread's
run and admitted under the budgets before any model is called; its reply says which model
answered and what it cost, and the run's footer is amended with the follow-ups' total. Its
events go through the run registry (`Runs.record`), so it is counted in `/metrics` and gets
its `run ended` log line as any run does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

import blocks
from bot.core import prompts
from bot.core.budget import CallRefused
from bot.core.claude import Reply
from bot.core.conversation import Add, Ask, Discussion, Redo, Rethink, fit, route
from bot.core.events import CallFinished, RunFailed, RunFinished
from bot.core.pipeline import Pipeline
from bot.core.usage import CallRecord
from bot.ledger import LedgerError, RunLedger
from bot.settings import Settings
from bot.slack.limits import over_limit, too_long_replies
from bot.slack.poster import SLACK_FAILURES, Poster, describe
from bot.slack.runs import Respond, RunRequest, Runs, ephemeral
from bot.slack.threads import (
    FooterMark,
    Me,
    RunMark,
    Thread,
    ThreadUnreadable,
    footer_metadata,
    read_thread,
)

log = logging.getLogger(__name__)
DISCUSSION_QUESTION = "Turn this discussion into a plan."


@dataclass(frozen=True, slots=True)
class Request:
    """One thing asked of the bot in a thread."""

    team_id: str
    channel: str
    user_id: str
    text: str  # decoded, without the bot's mention; may be empty
    root_ts: str  # the thread answered in (a channel message starts its own)
    before_ts: str | None  # read the thread up to here (the mention); None: all of it
    respond: Respond  # tells the asker privately (ephemeral)
    replan: bool = False  # in a run's thread, re-plan (the shortcut) rather than route the text
    delivery: str | None = None  # what Slack sent (`event:<id>`, `shortcut:<trigger>`): a run's id


class Conversations:
    """Answers mentions and shortcuts for one process."""

    def __init__(
        self,
        *,
        runs: Runs,
        pipeline: Pipeline,
        ledger: RunLedger,
        poster: Poster,
        settings: Settings,
    ) -> None:
        self._runs = runs
        self._pipeline = pipeline
        self._ledger = ledger
        self._poster = poster
        self._settings = settings
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    @property
    def client(self) -> AsyncWebClient:
        return self._poster.client

    def accept(self, request: Request, me: Me) -> asyncio.Task[None]:
        """Answer `request` in a task the run registry owns (drained at shutdown)."""
        return self._runs.own(self._answered(request, me), name=f"thread-{request.root_ts}")

    async def _answered(self, request: Request, me: Me) -> None:
        """`_answer`, and whatever stops it the asker hears about: Bolt acknowledged the
        event long ago, so a failure nobody is told of is a request that vanished."""
        limit = self._settings.max_question_chars
        if over_limit(request.text, max_chars=limit):
            for page in too_long_replies(request.text, max_chars=limit):
                await request.respond(**ephemeral(page))
            return
        try:
            await self._answer(request, me)
        except LedgerError as exc:
            # Admission writes the run down before any model is called: nothing was spent.
            log.warning("could not answer in thread %s, the ledger: %s", request.root_ts, exc)
            await request.respond(**ephemeral(blocks.run_not_started_message()))
        except Exception:
            log.exception("could not answer a request in thread %s", request.root_ts)
            failed = blocks.command_failed_message(command="@orchestrate", what="answering")
            await request.respond(**ephemeral(failed))

    async def _answer(self, request: Request, me: Me) -> None:
        key = (request.channel, request.root_ts)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                await self._runs.wait_thread(request.channel, request.root_ts)
                await self._in_order(request, me)
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._locks[key]

    async def _in_order(self, request: Request, me: Me) -> None:
        if request.before_ts == request.root_ts:
            # A mention in a channel message starts its own thread: nothing to read yet.
            await self._start(request, Thread(request.root_ts, ()))
            return
        try:
            thread = await read_thread(
                self.client,
                channel=request.channel,
                root_ts=request.root_ts,
                before_ts=request.before_ts,
                me=me,
            )
        except ThreadUnreadable as problem:
            await request.respond(
                **ephemeral(blocks.thread_unreadable_message(error=problem.error))
            )
            return
        run = thread.first_run
        if run is None:
            await self._start(request, thread)
        else:
            await self._follow_up(request, thread, run)

    async def _start(self, request: Request, thread: Thread) -> None:
        """A run in the thread, the discussion so far (if any) as the strategy's context."""
        discussion = self._fit(thread)
        question = request.text or DISCUSSION_QUESTION
        run = _run_request(request, question, discussion)
        task = await self._runs.start(run, request.respond, delivery=request.delivery)
        if task is not None:
            await asyncio.shield(task)

    async def _follow_up(self, request: Request, thread: Thread, run: RunMark) -> None:
        latest = thread.latest_run or run
        discussion = self._fit(thread)
        context = prompts.thread_context(discussion)
        wanted = route(request.text, components=len(latest.components))
        match Rethink(request.text) if request.replan else wanted:
            case Rethink(request=text):
                started = await self._runs.start(
                    replace(_run_request(request, text, discussion), parent_run_id=run.run_id),
                    request.respond,
                    delivery=request.delivery,
                )
                if started is not None:
                    await asyncio.shield(started)
            case Ask(request=text):
                model = self._settings.review_model
                call = partial(self._pipeline.followup_answer, context, text)
                await self._single(
                    request, thread, run, model=model, call=call, shape=_Answer(text)
                )
            case Redo(number=number, request=text):
                name = latest.components[number - 1]
                component = prompts.followup_component(name, text)
                call = partial(
                    self._pipeline.followup_example, context, component, index=number - 1
                )
                shape = _Example(text, number, name)
                model = self._settings.examples_model
                await self._single(request, thread, run, model=model, call=call, shape=shape)
            case Add(request=text):
                component = prompts.followup_component("Added component", text)
                call = partial(self._pipeline.followup_example, context, component, index=None)
                model = self._settings.examples_model
                shape = _Example(text, None, "Added component")
                await self._single(request, thread, run, model=model, call=call, shape=shape)
        await self._amend_footer(request.channel, thread.footers.get(run.run_id), run.run_id)

    async def _single(
        self,
        request: Request,
        thread: Thread,
        run: RunMark,
        *,
        model: str,
        call: Callable[..., Awaitable[Reply[str]]],
        shape: _Answer | _Example,
    ) -> None:
        """One follow-up call: admitted under the budgets, recorded, answered in the thread."""
        context = prompts.thread_context(self._fit(thread))
        worst_case = self._pipeline.followup_worst_case_usd(context, model=model)
        followup = _run_request(request, request.text, None, parent_run_id=run.run_id)
        admitted = await self._runs.admit(followup, worst_case)
        if isinstance(admitted, blocks.OutboundMessage):
            await request.respond(**ephemeral(admitted))
            return
        reservation, budget = admitted
        run_id, started = reservation.run_id, time.monotonic()
        await self._ledger.set_thread(run_id, request.channel, request.root_ts)
        cut_off: list[CallRecord] = []
        try:
            reply = await call(on_cancel=cut_off.append, budget=budget)
        except CallRefused as refused:
            # No room left for the call once it came to it: nothing was spent.
            ended = RunFailed(refused.reason, self._pipeline.bill([]), time.monotonic() - started)
            await self._runs.record(run_id, followup, ended)
            await request.respond(**ephemeral(blocks.error_message(refused.reason)))
            return
        except asyncio.CancelledError:
            # The tokens a cancelled call had already spent are recorded all the same.
            await asyncio.shield(self._interrupted(run_id, followup, cut_off, started))
            raise
        # Through the run registry, as a run's events go: ledger, metrics, the run's log line.
        await self._runs.record(run_id, followup, CallFinished(reply.call))
        cost, elapsed = self._pipeline.bill([reply.call]), time.monotonic() - started
        end: RunFinished | RunFailed = (
            RunFinished(cost, elapsed)
            if reply.value is not None
            else RunFailed(reply.problem or "unknown failure", cost, elapsed)
        )
        await self._runs.record(run_id, followup, end)
        omitted = self._fit(thread).omitted
        await self._post(request, shape.messages(request.user_id, reply, omitted))

    async def _interrupted(
        self, run_id: str, followup: RunRequest, calls: list[CallRecord], started: float
    ) -> None:
        for record in calls:
            await self._runs.record(run_id, followup, CallFinished(record))
        elapsed = time.monotonic() - started
        ended = RunFailed("shutdown", self._pipeline.bill(calls), elapsed, interrupted=True)
        await self._runs.record(run_id, followup, ended)

    async def _post(self, request: Request, messages: list[blocks.OutboundMessage]) -> None:
        try:
            await self._poster.post_all(request.channel, messages, thread_ts=request.root_ts)
        except SLACK_FAILURES as exc:
            log.error("could not post a follow-up in %s: %s", request.root_ts, describe(exc))

    async def _amend_footer(self, channel: str, footer: FooterMark | None, run_id: str) -> None:
        """The run's footer, with the follow-ups and the new total (from the ledger)."""
        if footer is None:
            log.info("run %s has no footer to amend (it did not finish)", run_id)
            return
        info = await self._ledger.get_run(run_id)
        totals = await self._ledger.followups(run_id)
        if info is None or totals.count == 0:
            return
        line = blocks.followups_total_block(
            run_usd=info.cost_usd,
            count=totals.count,
            followups_usd=totals.cost_usd,
            unpriced_calls=totals.unpriced_calls + info.unpriced_calls,
        )
        # Each amendment is a new iteration of the footer: its feedback buttons get a new
        # block_id, numbered by the follow-ups counted so far.
        amended = blocks.renew_context_actions(_with_block(footer.blocks, line), totals.count)
        message = blocks.OutboundMessage(footer.text, amended)
        try:
            await self._poster.update(channel, footer.ts, message, metadata=footer_metadata(run_id))
        except SLACK_FAILURES as exc:
            log.error("could not amend the footer of run %s: %s", run_id, describe(exc))

    def _fit(self, thread: Thread) -> Discussion:
        return fit(list(thread.messages), max_tokens=self._settings.thread_context_tokens)


@dataclass(frozen=True, slots=True)
class _Answer:
    request: str

    def messages(
        self, asker_id: str, reply: Reply[str], omitted: int
    ) -> list[blocks.OutboundMessage]:
        call = reply.call
        if reply.value is None:
            return [_failed(asker_id, reply)]
        return blocks.followup_answer_messages(
            asker_id=asker_id,
            request=self.request,
            markdown=reply.value,
            model=call.model,
            cost_usd=call.cost_usd,
            omitted=omitted,
        )


@dataclass(frozen=True, slots=True)
class _Example:
    request: str
    number: int | None
    name: str

    def messages(
        self, asker_id: str, reply: Reply[str], omitted: int
    ) -> list[blocks.OutboundMessage]:
        call = reply.call
        if reply.value is None:
            return [_failed(asker_id, reply)]
        return blocks.followup_example_messages(
            asker_id=asker_id,
            request=self.request,
            number=self.number,
            name=self.name,
            markdown=reply.value,
            model=call.model,
            cost_usd=call.cost_usd,
            omitted=omitted,
        )


def _failed(asker_id: str, reply: Reply[str]) -> blocks.OutboundMessage:
    return blocks.followup_failed_message(
        asker_id=asker_id,
        reason=reply.problem or "unknown failure",
        model=reply.call.model,
        cost_usd=reply.call.cost_usd,
    )


def _run_request(
    request: Request,
    question: str,
    discussion: Discussion | None,
    *,
    parent_run_id: str | None = None,
) -> RunRequest:
    has_people = discussion is not None and discussion.people > 0
    return RunRequest(
        team_id=request.team_id,
        channel_id=request.channel,
        user_id=request.user_id,
        question=question,
        thread_ts=request.root_ts,
        thread=prompts.thread_context(discussion) if discussion and has_people else None,
        parent_run_id=parent_run_id,
    )


def _with_block(
    existing: tuple[dict[str, Any], ...], line: dict[str, Any]
) -> tuple[dict[str, Any], ...]:
    """`existing` with the follow-ups line replaced, or added (in the last place if full)."""
    kept = [b for b in existing if b.get("block_id") != blocks.FOLLOWUPS_BLOCK_ID]
    if len(kept) >= blocks.MAX_BLOCKS:
        kept = kept[: blocks.MAX_BLOCKS - 1]
    return (*kept, line)
