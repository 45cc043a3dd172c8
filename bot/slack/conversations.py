"""Conversations in threads: what a mention or the message shortcut asks, answered in order.

`Conversations.accept` takes one request (a mention, or "Orchestrate this thread") and queues it
as a durable workflow (`orchestrate.thread`) in the engine's threads queue, in the thread's own
partition: requests for one thread are answered one at a time, in the order they arrived, by
this instance or any other (after a restart, the next one). The workflow's id comes from what
Slack sent (the mention's `ts`, which orders it in its thread, then its `event_id`; the
shortcut's `action_ts` and `trigger_id`), so a replayed event starts nothing twice, on any
instance. Answering reads the thread first (a step): a thread the bot cannot read gets one
ephemeral answer saying so. Then:

* a thread without a run (a channel message, or a team's discussion) starts a run in that
  thread, the discussion so far given to the strategy model as context;
* a run's thread gets a follow-up, routed by `bot.core.conversation.route`: a question or
  critique goes to the review model, one component redone or added to the examples model,
  a re-plan to the whole pipeline (a new strategy version with its examples and review).

Every follow-up is its own run in the ledger (its id derived from the workflow's), for the user
who asked, linked to the thread's run and admitted under the budgets before any model is called
(a step); its one model call is a step too, its record keyed so a resumed workflow never counts
it twice; its reply says which model answered and what it cost, and the run's footer is
amended with the follow-ups' total. Its events go through the run registry's recorder
(`Recorder.record`), so it is counted in `/metrics` and gets its `run ended` log line as any
run does.

Every message a follow-up posts in the thread (each part of its answer, the notice of a part
Slack refused) carries a `Tag` (the follow-up's run id and the part) in its metadata, as a
run's messages do: the post is a step, and a step cut off after some parts landed but before
its checkpoint (a crash, a shutdown, a takeover) runs again when the workflow resumes; it
then reads the parts already in the thread (`Poster.parts_posted`) and posts only the rest.
(What the asker is told privately, an ephemeral message, cannot be found again: a `tell`
step cut off just after it was sent may tell it twice.)
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
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
from bot.ledger import LedgerError, Limits, RunLedger
from bot.logs import fields
from bot.settings import Settings
from bot.slack import engine
from bot.slack.limits import COMMAND, over_limit, too_long_replies
from bot.slack.poster import SLACK_FAILURES, Poster, Tag, describe
from bot.slack.requests import PrivateTo, Respond, RunRequest, ephemeral, quietly, run_id_for, tell
from bot.slack.runs import Runs
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
# The parts of a follow-up's thread messages (their tags): its answer's messages, numbered
# from 1, and the notice of what Slack refused of them.
ANSWER_PART = "answer"
UNDELIVERED_PART = "undelivered.1"
HINT_PART = "hint.1"  # a bare mention's help text


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
    arrived_ts: str | None = None  # Slack's ts of the request (the mention's, the shortcut's)
    hint: bool = False  # a bare mention in a channel: answered with the help text
    workflow_id: str | None = None  # the workflow answering it, once its turn has come


@dataclass(frozen=True, slots=True)
class ThreadOrder:
    """What a request's workflow is queued with (kept by the engine: plain data only).
    `kind` is what asked (`mention`, `shortcut`); the run it follows, if any, is found in
    the thread when it is answered."""

    workflow_id: str
    kind: str
    team_id: str
    channel: str
    user_id: str
    text: str
    root_ts: str
    before_ts: str | None
    replan: bool
    delivery: str
    me_user_id: str
    me_bot_id: str | None
    host: str
    queued_at: float  # time.time() when queued: the queue's added latency is measured from it


def thread_partition(channel: str, root_ts: str) -> str:
    """The threads queue's partition of a thread: one item at a time, in order."""
    return f"{channel}:{root_ts}"


MAX_ORDER = 2**31 - 1  # the engine's largest priority
ORDER_UNIT_S = 1e-5  # `thread_order`'s unit: 10 µs, so MAX_ORDER is about 6 hours
# How long a request waits, in this process, for others of its thread delivered with it
# (Slack's retries, a burst of mentions), so that they are queued in the order they were posted.
GATHER_S = 0.05


def thread_order(request: Request) -> int:
    """Where the request goes in its thread's queue: the time from the thread's root to the
    request by Slack's clock, in units of 10 µs (the queue takes the smallest first, before
    it looks at when an item was queued: a request delivered a little late still goes in its
    place). Capped, so monotonic: requests more than about 6 hours into a thread tie, and go
    in the order they were queued."""
    try:
        since = float(request.arrived_ts or time.time()) - float(request.root_ts)
    except ValueError:
        return MAX_ORDER
    return max(1, min(MAX_ORDER, int(since / ORDER_UNIT_S) + 1))


class _Arrivals:
    """The requests of one thread arriving in this process, queued one at a time, each once
    every request posted before it that has arrived (within GATHER_S of it) is queued."""

    def __init__(self) -> None:
        self.waiting: set[tuple[int, str]] = set()  # (thread order, workflow id)
        self.turn = asyncio.Condition()


def thread_workflow_id(request: Request) -> str:
    """The request's workflow id: its thread, then Slack's ts of the request zero-padded
    (so ids list in the order posted; the queue itself orders by `thread_order`), then what
    Slack sent (or a fresh id, when it sent none)."""
    arrived = request.arrived_ts or f"{time.time():.6f}"
    seconds, _, fraction = arrived.partition(".")
    ordered = f"{seconds.zfill(12)}.{fraction.ljust(6, '0')}"
    sent = request.delivery or f"fresh:{uuid.uuid4()}"
    return f"thread:{request.channel}:{request.root_ts}:{ordered}:{run_id_for(sent)}"


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
        # How to reply privately to the asker of a request queued here (one answered on
        # another instance, or after a restart, replies with chat.postEphemeral).
        self._replies: dict[str, Respond] = {}
        self._arrivals: dict[str, _Arrivals] = {}  # per thread partition, see `_enqueue_in_turn`
        # The queue's added latency (enqueue → start), seconds, of requests answered here.
        self.queue_waits: list[float] = []
        # The thread workflow (`bot.slack.workflows.register_conversations` sets it).
        self.workflow: Callable[[ThreadOrder], Coroutine[Any, Any, str]] | None = None

    @property
    def client(self) -> AsyncWebClient:
        return self._poster.client

    def accept(self, request: Request, me: Me) -> asyncio.Task[None]:
        """Queue `request` in its thread's partition and wait for its answer, in a task the
        run registry owns (drained at shutdown)."""
        return self._runs.own(self._queued(request, me), name=f"thread-{request.root_ts}")

    async def _queued(self, request: Request, me: Me) -> None:
        limit = self._settings.max_question_chars
        if over_limit(request.text, max_chars=limit):
            for page in too_long_replies(request.text, max_chars=limit):
                await request.respond(**ephemeral(page))
            return
        if self.workflow is None:
            raise RuntimeError("no thread workflow registered (bot.slack.workflows)")
        workflow_id = thread_workflow_id(request)
        order = ThreadOrder(
            workflow_id=workflow_id,
            kind="shortcut" if request.replan else "hint" if request.hint else "mention",
            team_id=request.team_id,
            channel=request.channel,
            user_id=request.user_id,
            text=request.text,
            root_ts=request.root_ts,
            before_ts=request.before_ts,
            replan=request.replan,
            delivery=request.delivery or f"queued:{workflow_id}",
            me_user_id=me.user_id,
            me_bot_id=me.bot_id,
            host=self._runs.host,
            queued_at=time.time(),
        )
        self._replies[workflow_id] = request.respond
        partition = thread_partition(request.channel, request.root_ts)
        try:
            handle = await self._enqueue_in_turn(partition, order, thread_order(request))
        except Exception as exc:
            # The engine's tables cannot be written: nothing was queued, nothing is spent.
            self._replies.pop(workflow_id, None)
            log.warning("could not queue a request in thread %s: %s", request.root_ts, exc)
            await request.respond(**ephemeral(blocks.run_not_started_message()))
            return
        try:
            await quietly(handle)
        finally:
            self._replies.pop(workflow_id, None)

    async def _enqueue_in_turn(
        self, partition: str, order: ThreadOrder, position: int
    ) -> engine.Handle[str]:
        """Queue `order` in its thread's partition once the requests of that thread that
        arrived here with it (within GATHER_S) and were posted before it are queued. The
        queue takes a partition's items by their position; this keeps them from being taken
        in the order their deliveries happened to be handled, where the first to be queued
        would start before the earlier-posted ones were in the queue."""
        assert self.workflow is not None
        arrivals = self._arrivals.setdefault(partition, _Arrivals())
        mine = (position, order.workflow_id)
        arrivals.waiting.add(mine)
        try:
            await asyncio.sleep(GATHER_S)
            async with arrivals.turn:
                await arrivals.turn.wait_for(lambda: min(arrivals.waiting) == mine)
                return await self._runs.engine.enqueue(
                    order.workflow_id, partition, self.workflow, order, order=position
                )
        finally:
            arrivals.waiting.discard(mine)
            if arrivals.waiting:
                async with arrivals.turn:
                    arrivals.turn.notify_all()
            elif self._arrivals.get(partition) is arrivals:
                del self._arrivals[partition]

    async def answer(self, order: ThreadOrder) -> str:
        """The request, inside its workflow (its turn in the thread has come)."""
        self.queue_waits.append(max(0.0, time.time() - order.queued_at))
        respond = self._replies.pop(order.workflow_id, None) or PrivateTo(
            self._poster, order.channel, order.user_id, thread_ts=order.root_ts
        )
        request = Request(
            team_id=order.team_id,
            channel=order.channel,
            user_id=order.user_id,
            text=order.text,
            root_ts=order.root_ts,
            before_ts=order.before_ts,
            respond=respond,
            replan=order.replan,
            delivery=order.delivery,
            hint=order.kind == "hint",
            workflow_id=order.workflow_id,
        )
        with self._runs.working():
            await self._answered(request, Me(order.me_user_id, order.me_bot_id))
        return "answered"

    async def _answered(self, request: Request, me: Me) -> None:
        """`_answer`, and whatever stops it the asker hears about: Bolt acknowledged the
        event long ago, so a failure nobody is told of is a request that vanished."""
        try:
            await self._answer(request, me)
        except LedgerError as exc:
            # Admission writes the run down before any model is called: nothing was spent.
            log.warning("could not answer in thread %s, the ledger: %s", request.root_ts, exc)
            await request.respond(**ephemeral(blocks.run_not_started_message()))
        except Exception as exc:
            if engine.lost(exc):
                raise
            log.exception("could not answer a request in thread %s", request.root_ts)
            failed = blocks.command_failed_message(command="@orchestrate", what="answering")
            await request.respond(**ephemeral(failed))

    async def _answer(self, request: Request, me: Me) -> None:
        # The queue orders the thread's requests; a run this instance started in the thread
        # by a command (not queued) is waited for until its last message is posted.
        await self._runs.wait_thread(request.channel, request.root_ts)
        await self._in_order(request, me)

    async def _in_order(self, request: Request, me: Me) -> None:
        if request.hint:
            await engine.step("hint", partial(self._hint, request))
            return
        if request.before_ts == request.root_ts:
            # A mention in a channel message starts its own thread: nothing to read yet.
            await self._start(request, Thread(request.root_ts, ()))
            return
        thread = await engine.step("read", partial(self._read, request, me))
        if isinstance(thread, str):
            await engine.step(
                "tell",
                partial(tell, request.respond, blocks.thread_unreadable_message(error=thread)),
            )
            return
        run = thread.first_run
        if run is None:
            await self._start(request, thread)
        else:
            await self._follow_up(request, thread, run)

    async def _hint(self, request: Request) -> None:
        """The help text in the mention's thread; outside the admins' allow-list, a private
        note naming the allowed channels instead (the same one a refused run gets), so the
        bot says nothing in public where admins have not enabled it."""
        allowed = await self._runs.admission.allowed(request.team_id, request.channel)
        if isinstance(allowed, blocks.OutboundMessage):
            await request.respond(**ephemeral(allowed))
            return
        limit = self._settings.max_question_chars
        hint = blocks.help_message(command=COMMAND, max_chars=limit)
        # Tagged with the request's own id: a resumed workflow that finds it posted is done.
        tagged_as = request.workflow_id or run_id_for(request.delivery)
        if HINT_PART in await self._posted_before(request, tagged_as):
            return
        tag = Tag(tagged_as, HINT_PART)
        await self._poster.post(request.channel, hint, thread_ts=request.root_ts, tag=tag)

    async def _read(self, request: Request, me: Me) -> Thread | str:
        """The thread up to the request, or Slack's code for why it cannot be read."""
        try:
            return await read_thread(
                self.client,
                channel=request.channel,
                root_ts=request.root_ts,
                before_ts=request.before_ts,
                me=me,
            )
        except ThreadUnreadable as problem:
            return problem.error

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
        footer = thread.footers.get(run.run_id)
        await engine.step(
            "footer", partial(self._amend_footer, request.channel, footer, run.run_id)
        )

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
        """One follow-up call, as steps of the request's workflow: admitted under the budgets
        (its run id derived from the workflow's, so admitting again admits nothing new), the
        call (kept: a resumed workflow does not make it again; its record keyed, so it is
        never counted twice), recorded, answered in the thread."""
        context = prompts.thread_context(self._fit(thread))
        worst_case = self._pipeline.followup_worst_case_usd(context, model=model)
        followup = _run_request(request, request.text, None, parent_run_id=run.run_id)
        run_id = run_id_for(f"followup:{request.delivery}")
        admitted = await engine.step(
            "admit", partial(self._admit, request, followup, worst_case, run_id)
        )
        if isinstance(admitted, blocks.OutboundMessage):
            await engine.step("tell", partial(tell, request.respond, admitted))
            return
        started = time.monotonic()
        budget = self._runs.admission.budget(run_id, admitted)
        asked = partial(self._ask, run_id, followup, call, budget, started)
        reply = await engine.step("call", asked)
        if isinstance(reply, str):
            await engine.step("tell", partial(tell, request.respond, blocks.error_message(reply)))
            return
        await engine.step("record", partial(self._recorded, run_id, followup, reply, started))
        omitted = self._fit(thread).omitted
        messages = shape.messages(request.user_id, reply, omitted)
        await engine.step("post", partial(self._post, request, run_id, messages))

    async def _admit(
        self, request: Request, followup: RunRequest, worst_case: Any, run_id: str
    ) -> Limits | blocks.OutboundMessage:
        admitted = await self._runs.admission.admit(followup, worst_case, run_id=run_id)
        if not isinstance(admitted, blocks.OutboundMessage):
            await self._ledger.set_thread(run_id, request.channel, request.root_ts)
        return admitted

    async def _ask(
        self,
        run_id: str,
        followup: RunRequest,
        call: Callable[..., Awaitable[Reply[str]]],
        budget: Any,
        started: float,
    ) -> Reply[str] | str:
        """The call's reply, or why it was refused (no room left once it came to it: nothing
        was spent). A shutdown that cuts the call off records the tokens it had spent and
        leaves the workflow pending: the restart (or a live instance) makes the call again."""
        cut_off: list[CallRecord] = []
        try:
            reply = await call(on_cancel=cut_off.append, budget=budget)
        except CallRefused as refused:
            ended = RunFailed(refused.reason, self._pipeline.bill([]), time.monotonic() - started)
            await self._runs.recorder.record(run_id, followup, ended)
            return refused.reason
        except asyncio.CancelledError:
            await asyncio.shield(self._cut_off(run_id, followup, cut_off))
            raise
        if reply.call.key is None:
            # A stable key: a record written before the step's checkpoint is not counted twice.
            reply = replace(reply, call=replace(reply.call, key=f"{run_id}:call"))
        return reply

    async def _recorded(
        self, run_id: str, followup: RunRequest, reply: Reply[str], started: float
    ) -> None:
        # Through the run registry, as a run's events go: ledger, metrics, the run's log line.
        await self._runs.recorder.record(run_id, followup, CallFinished(reply.call))
        cost, elapsed = self._pipeline.bill([reply.call]), time.monotonic() - started
        end: RunFinished | RunFailed = (
            RunFinished(cost, elapsed)
            if reply.value is not None
            else RunFailed(reply.problem or "unknown failure", cost, elapsed)
        )
        await self._runs.recorder.record(run_id, followup, end)

    async def _cut_off(self, run_id: str, followup: RunRequest, calls: list[CallRecord]) -> None:
        for record in calls:
            await self._runs.recorder.record(run_id, followup, CallFinished(record))

    async def _post(
        self, request: Request, run_id: str, messages: list[blocks.OutboundMessage]
    ) -> None:
        """The follow-up's messages in the thread, each tagged `answer.<n>` with the
        follow-up's run id; those a resumed workflow finds there already are not posted
        again. Parts Slack refuses even cut smaller are named in a notice (`undelivered.1`)."""
        posted = await self._posted_before(request, run_id)
        lost: list[blocks.OutboundMessage] = []
        error = ""
        for number, message in enumerate(messages, start=1):
            tag = Tag(run_id, f"{ANSWER_PART}.{number}")
            if tag.part in posted:
                continue
            try:
                refused = await self._poster.post_or_refusal(
                    request.channel, message, thread_ts=request.root_ts, tag=tag
                )
                if refused is not None:
                    lost, error = lost + refused[0], refused[1]
            except SLACK_FAILURES as exc:
                # Not answered even after the retries (and not found in the thread).
                log.error("could not post a follow-up in %s: %s", request.root_ts, describe(exc))
                return
        if lost and UNDELIVERED_PART not in posted:
            await self._report_lost(request, run_id, error, lost)

    async def _posted_before(self, request: Request, run_id: str) -> dict[str, str]:
        """The follow-up's parts already in the thread (part → ts) when its workflow runs
        again after a restart or a takeover; nothing (and no read) on its first go."""
        if request.workflow_id is None or not await self._runs.engine.resumed(request.workflow_id):
            return {}
        posted = await self._poster.parts_posted(request.channel, request.root_ts, run_id)
        log.info("resuming a follow-up's post", extra=fields(run_id=run_id, posted=len(posted)))
        return posted

    async def _report_lost(
        self, request: Request, run_id: str, error: str, lost: list[blocks.OutboundMessage]
    ) -> None:
        await self._poster.report_refused(
            request.channel,
            request.root_ts,
            what="the follow-up's answer",
            error=error,
            lost=lost,
            tag=Tag(run_id, UNDELIVERED_PART),
        )

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
