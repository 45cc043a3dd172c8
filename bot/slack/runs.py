"""Runs in flight: admitting a question, owning its task, draining on shutdown.

`Runs.start` does, in order, what must happen before any model is called: reserve the
run's worst case against the budgets (a refusal is told to the asker and nothing else
happens), then post the thread's first message (a channel the bot cannot post in is
joined when public, or explained to the asker). Only then is the pipeline started, as a
task this object owns (Bolt keeps no reference to it). Each event goes to the ledger first
(so every call is written down the moment it returns) and then to the thread; the ledger
writer keeps what the database cannot take yet, so an outage never stops a run. Every way a
run ends (finished, failed, cancelled, a bug) closes its row, releasing its reservation.
`drain` lets runs finish for a grace period and cancels the rest, which the pipeline turns
into an "interrupted" ending with every spent token recorded.

Each run in flight has a `RunStop`. `stop` (the Stop button's handler calls it after
writing the request to the ledger) cancels the run's workflow in the engine, wherever it
runs, and stops it at once if this process runs it. On the instance that runs it, DBOS's own
watcher cancels its model calls in flight within about a second (they are preemptible
steps, `engine.DurableStep`), and a step begun after the cancellation is refused: either way
the run reads who asked from the ledger once and stops as a Stop clicked here would (its
calls closed and recorded, "stopped by …" in the thread, its row closed). A cancelled run
still writes its ending (ledger writes and posts are not steps); a run taken over by
another instance writes nothing more.

A Retry of a failed example (`retry`) is served from the ledger alone (the run's row, its
kept strategy and which of its components failed), so any instance can take the click,
after any restart, as a durable workflow whose id is derived from the click (a replayed click
starts nothing twice); a ledger claim per run and component admits one retry at a time across
instances, and is released however the retry ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any, NoReturn

from slack_sdk.errors import SlackApiError

import blocks
from bot.core.budget import CallBudget, CallRefused
from bot.core.events import (
    CallFinished,
    Event,
    ExampleFailed,
    ExampleReady,
    RunFailed,
    RunFinished,
    StrategyDraft,
    StrategyReady,
)
from bot.core.models import Strategy
from bot.core.pipeline import Pipeline, RunStop, RunSuspended
from bot.core.usage import CallRecord
from bot.ledger import (
    BudgetRefusal,
    BudgetStop,
    CallHold,
    EndStatus,
    GovernanceStore,
    LedgerError,
    Limits,
    PageLog,
    Reservation,
    RunInfo,
    RunLedger,
    StopRequests,
    WorkClaims,
    initial_settings,
)
from bot.logs import fields
from bot.settings import Settings
from bot.slack import engine
from bot.slack.admins import workspace_admins
from bot.slack.engine import Engine
from bot.slack.lease import Lease
from bot.slack.metrics import Metrics, run_outcome, token_kinds
from bot.slack.poster import SLACK_FAILURES, Poster, Tag, Undelivered, describe, slack_error
from bot.slack.progress import ProgressTarget, StreamPacing
from bot.slack.render import ThreadRenderer
from bot.slack.threads import run_metadata

log = logging.getLogger(__name__)
Respond = Callable[..., Awaitable[Any]]
SUSPEND_S = 10.0  # how long suspended runs have to close their calls at a shutdown
# Run ids derived from what Slack sent: the same delivery is the same run, on any instance.
RUN_IDS = uuid.UUID("5f0c7d1e-2a4b-4c8e-9d3f-6b1a0e7c2d94")


def run_id_for(delivery: str | None) -> str:
    """The run id for a delivery (`command:<trigger_id>`, `event:<event_id>`, …); a fresh
    one when Slack sent no id."""
    if not delivery:
        return str(uuid.uuid4())
    return str(uuid.uuid5(RUN_IDS, delivery))


@dataclass(frozen=True, slots=True)
class RunOrder:
    """What a run's workflow is started with (kept by the engine: plain data only)."""

    run_id: str
    request: RunRequest
    host: str


@dataclass(frozen=True, slots=True)
class RetryOrder:
    """What a Retry's workflow is started with (plain data): the follow-up `retry_id` of
    run `run_id` (its parent), component `index` of `strategy` illustrated again under the
    admitted `limits`; `claim` (key, when) is given back however the retry ends."""

    retry_id: str
    run_id: str
    request: RunRequest
    strategy: Strategy
    index: int
    limits: Limits
    claim: tuple[str, datetime]
    host: str
    kind: str = "retry"


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Who asked what, where. `thread_ts` runs it inside that existing thread (a mention, a
    re-plan) instead of opening one; `thread` is a discussion the strategy builds on
    (`prompts.thread_context`); `parent_run_id` makes it a follow-up of that run."""

    team_id: str
    channel_id: str
    user_id: str
    question: str
    thread_ts: str | None = None
    thread: str | None = None
    parent_run_id: str | None = None


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


class ChannelUnavailable(Exception):
    """The bot cannot post in the command's channel; `error` is Slack's code for why."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Runs:
    """Admits runs and owns their tasks for one process."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        ledger: RunLedger,
        governance: GovernanceStore,
        poster: Poster,
        settings: Settings,
        claims: WorkClaims,
        engine: Engine,
        stops: StopRequests | None = None,
        metrics: Metrics | None = None,
        pages: PageLog | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._pages = pages  # each run's web page (bot.web), when kept
        self._ledger = ledger
        self._governance = governance
        self._poster = poster
        self._settings = settings
        self._claims = claims
        self.engine = engine
        self._stop_requests = stops  # who asked a run to stop (read once, when it stops)
        self._stops: dict[str, RunStop] = {}  # runs in flight in this process
        self._stream_pacing = StreamPacing()  # every run's progress stream shares the limits
        self.metrics = metrics or Metrics()
        self.metrics.track_in_flight(lambda: self.in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._suspendable: set[asyncio.Task[Any]] = set()  # see `working`
        # Runs in flight per thread, each with the event its renderer sets once the run's
        # last message is posted (set too when the run ends, however it ends).
        self._by_thread: dict[tuple[str, str], dict[str, asyncio.Event]] = {}
        # How to reply privately to the asker of a run this instance started (a run resumed
        # elsewhere replies with chat.postEphemeral).
        self._replies: dict[str, Respond] = {}
        # What ends with each run started (not resumed) here, until it has ended.
        self._started: dict[str, asyncio.Future[None]] = {}
        self._workflow_tasks: dict[str, asyncio.Task[Any]] = {}  # each run's own task
        # Which registry a workflow started here runs on (a workflow resumed here from
        # elsewhere runs on any: `bot.slack.workflows.host`).
        self.host = f"runs-{uuid.uuid4()}"
        # The run's workflow (`bot.slack.workflows.register` sets it: it imports this module).
        self.workflow: Callable[[RunOrder], Coroutine[Any, Any, str]] | None = None
        self.retry_workflow: Callable[[RetryOrder], Coroutine[Any, Any, str]] | None = None
        self.lease: Lease | None = None  # set by the composition root (Liveness)
        # The ids of the live instances (the composition root sets it from the ledger).
        self.alive: Callable[[], Awaitable[set[str]]] | None = None
        self.admitted = 0  # runs launched by this process, for the demo and tests
        # Told the team id after each run that ends (the budget watch uses it).
        self.on_finished: Callable[[str], Awaitable[object]] | None = None

    @property
    def in_flight(self) -> int:
        """Runs in flight here (each counted once, whether started here or resumed here),
        and the other work this registry owns (a Retry, a follow-up)."""
        return len(self._running()) + len(self._tasks)

    def _running(self) -> set[str]:
        """The runs in flight here: started here, or executing here (each counted once)."""
        return set(self._started) | set(self._workflow_tasks)

    def _busy(self) -> set[asyncio.Future[Any]]:
        """What is in flight: the runs executing here (their workflows' tasks), runs
        started here and not yet executing, and the other work this registry owns."""
        return {*self._tasks, *self._started.values(), *self._workflow_tasks.values()}

    async def start(
        self, request: RunRequest, respond: Respond, *, delivery: str | None = None
    ) -> asyncio.Future[None] | None:
        """Start one run as a durable workflow; tell the asker (ephemerally) if it cannot
        start. `delivery` names what Slack sent (a command's `trigger_id`, an event's
        `event_id`): the run's id is derived from it, so a replay, on any instance, starts
        nothing. Returns what finishes with the run, or None for a replay."""
        run_id = run_id_for(delivery)
        self._replies[run_id] = respond
        order = RunOrder(run_id, request, self.host)
        try:
            handle = await self.engine.start(run_id, self.workflow, order)
        except Exception as exc:
            # The engine's tables cannot be written (the database is away or full): a run
            # that could not be resumed is not started, and nothing is spent.
            self._replies.pop(run_id, None)
            log.warning("could not start a run: %s", describe(exc), extra=fields(run_id=run_id))
            await respond(**ephemeral(blocks.run_not_started_message()))
            return None
        if handle is None:
            self._replies.pop(run_id, None)
            log.info("a delivery seen before was not run again", extra=fields(run_id=run_id))
            return None
        ended = asyncio.ensure_future(quietly(handle))
        self._started[run_id] = ended
        ended.add_done_callback(lambda _: self._started.pop(run_id, None))
        return ended

    async def execute(self, order: RunOrder) -> str:
        """The run, inside its workflow: admission, the first message and each model call
        are steps (kept by the engine, so a resumed run does none of them twice). Returns
        how it ended; raises `CancelledError` when suspended by a shutdown (the workflow
        stays pending, for the next start to resume)."""
        request, run_id = order.request, order.run_id
        respond = self._replies.pop(run_id, None) or self._private_reply(request)
        current = asyncio.current_task()
        if current is not None:
            self._workflow_tasks[run_id] = current
        try:
            return await self._execute(order, request, run_id, respond)
        finally:
            self._workflow_tasks.pop(run_id, None)

    async def _execute(
        self, order: RunOrder, request: RunRequest, run_id: str, respond: Respond
    ) -> str:
        admitted = await engine.step("admit", partial(self._admit, request, run_id))
        if isinstance(admitted, blocks.OutboundMessage):
            await engine.step("tell", partial(_tell, respond, admitted))
            return "refused"
        opened = await engine.step("open", partial(self._open, request, run_id))
        if isinstance(opened, blocks.OutboundMessage):
            await engine.step("tell", partial(_tell, respond, opened))
            return "not started"
        top_ts = opened
        thread_ts = request.thread_ts or top_ts
        resumed = await self._resumed(run_id, request.channel_id, thread_ts)
        renderer = ThreadRenderer(
            self._poster,
            channel=request.channel_id,
            thread_ts=thread_ts,
            asker_id=request.user_id,
            question=request.question,
            top_ts=top_ts,
            run_id=run_id,
            progress=None if resumed else self._progress_target(request),
            web_link=self._settings.run_page_url(run_id),
            posted_before=resumed,
        )
        if resumed is not None and self._pages is not None:
            await self._pages.restart(run_id)  # the resumed run tells its events again
        stop = self._stops[run_id] = RunStop()
        if resumed is not None and (by := await self._stopped_by(run_id)):
            stop.stop(f"stopped by {by}", by=by)  # asked while no instance ran it
        key = (request.channel_id, thread_ts)
        self._by_thread.setdefault(key, {})[run_id] = renderer.posted
        self.admitted += 1
        try:
            return await self._run(run_id, request, renderer, admitted, stop)
        finally:
            self._stops.pop(run_id, None)
            renderer.posted.set()
            self._forget(key, run_id)

    async def _admit(self, request: RunRequest, run_id: str) -> Limits | blocks.OutboundMessage:
        admitted = await self._reserve(request, run_id)
        if isinstance(admitted, blocks.OutboundMessage):
            return admitted
        return admitted[1]

    async def _open(self, request: RunRequest, run_id: str) -> str | blocks.OutboundMessage:
        """The thread's first message (its `ts`), or the reply saying why it was not posted."""
        try:
            top_ts = await self._open_thread(request, run_id)
        except ChannelUnavailable as problem:
            _not_started(request, run_id, "not in channel", problem.error)
            await self._ledger.finish_run(
                run_id, "failed", elapsed_s=0.0, error=f"cannot post in channel: {problem.error}"
            )
            return blocks.channel_unavailable_message(error=problem.error)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise  # a shutdown: the step runs again after the restart
            _not_started(request, run_id, "Slack API error", describe(exc))
            # No run row may stay `running` (and holding budget) for a run that never began.
            await self._ledger.finish_run(
                run_id, "failed", elapsed_s=0.0, error="the first message could not be posted"
            )
            return blocks.run_not_started_message()
        await self._ledger.set_thread(run_id, request.channel_id, request.thread_ts or top_ts)
        return top_ts

    async def _resumed(self, run_id: str, channel: str, thread_ts: str) -> dict[str, str] | None:
        """For a run resumed after a restart or a takeover, the parts of its thread already
        posted (part → ts), which it must not post again; None for a run on its first go."""
        if not await self.engine.resumed(run_id):
            return None
        posted = await self._poster.parts_posted(channel, thread_ts, run_id)
        log.info("resuming a run", extra=fields(run_id=run_id, posted=len(posted)))
        return posted

    def _private_reply(self, request: RunRequest) -> Respond:
        """How a run resumed on another instance tells the asker something privately."""
        return PrivateTo(self._poster, request.channel_id, request.user_id)

    def _progress_target(self, request: RunRequest) -> ProgressTarget | None:
        """Where the run's progress message streams to (the asker), unless it is off."""
        if not self._settings.progress:
            return None
        return ProgressTarget(request.user_id, request.team_id, self._stream_pacing)

    def stop_here(self, run_id: str, *, by: str) -> bool:
        """Stop `run_id` now if this process runs it; False if it does not (or it ended)."""
        stop = self._stops.get(run_id)
        if stop is None:
            return False
        stop.stop(f"stopped by {by}", by=by)
        return True

    async def stop(self, run_id: str, *, by: str) -> None:
        """Stop `run_id` for `by`, wherever it runs: at once if this process runs it, and
        through the engine's cancellation (noticed within about a second) if another does."""
        self.stop_here(run_id, by=by)
        try:
            if not await self._held_by_a_live_instance(run_id):
                # Suspended by a restart, or its instance died: cancelling would leave it to
                # no one. The request is in the ledger; the run, once resumed, reads it and
                # stops there at once (`_execute`), saying who stopped it.
                log.info("stop asked for a run no live instance runs", extra=fields(run_id=run_id))
                return
            await self.engine.cancel(run_id)
        except Exception as exc:
            # The engine's database is away: a run here was stopped already; one elsewhere
            # is not, and the clicker can click again.
            log.warning("could not cancel run %s in the engine: %s", run_id, describe(exc))

    async def _held_by_a_live_instance(self, run_id: str) -> bool:
        """Whether the run's workflow is pending on an instance that is alive (or queued to
        start); True when liveness is not known here."""
        executor = await self.engine.pending_on(run_id)
        if executor is None or self.alive is None:
            return True
        return executor in await self.alive()

    async def _cancelled(self, run_id: str, stop: RunStop) -> NoReturn:
        """The run's workflow was cancelled (a Stop clicked on any instance): stop the run as
        that Stop would have here, then wait to be cancelled with the run's other calls."""
        if not stop.requested:
            by = await self._stopped_by(run_id)
            log.info("run cancelled in the engine", extra=fields(run_id=run_id, by=by))
            stop.stop(f"stopped by {by}" if by else "the run was cancelled", by=by)
        await asyncio.get_running_loop().create_future()  # the stop cancels this step
        raise AssertionError("unreachable")  # pragma: no cover - the future never resolves

    async def _stopped_by(self, run_id: str) -> str | None:
        """Who asked `run_id` to stop (the first request, as the ledger keeps it)."""
        if self._stop_requests is None:
            return None
        try:
            asked = await self._stop_requests.stop_requests_for([run_id])
        except (LedgerError, OSError) as exc:
            log.warning("could not read who stopped run %s: %s", run_id, exc)
            return None
        return asked.get(run_id)

    def own(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run `work` as a task this registry owns: kept referenced, drained at shutdown."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Count the current task (a follow-up's workflow) as work in flight: waited for by
        `wait_idle`; at a shutdown, once the grace is over, cancelled at once (its call in
        flight records what it spent; the workflow stays pending, for the restart)."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            self._suspendable.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._tasks.discard(task)
                self._suspendable.discard(task)

    async def wait_thread(self, channel: str, thread_ts: str) -> None:
        """Return once every run of this process in that thread has posted its last
        message (its first message's final edit may still be queued: a follow-up's answer
        need not wait a minute of Tier 3 pacing for it)."""
        running = self._by_thread.get((channel, thread_ts))
        if running:
            await asyncio.gather(*(posted.wait() for posted in list(running.values())))

    def _forget(self, key: tuple[str, str], run_id: str) -> None:
        running = self._by_thread.get(key)
        if running is not None:
            running.pop(run_id, None)
            if not running:
                del self._by_thread[key]

    async def admit_as(
        self, request: RunRequest, worst_case: Decimal | None, *, run_id: str
    ) -> Limits | blocks.OutboundMessage:
        """`admit` under a given run id (a workflow's): admitting it again (a resumed
        workflow) reserves nothing more. The budgets the run goes on under, or why not."""
        admitted = await self._admission(request, worst_case, models="", run_id=run_id)
        if isinstance(admitted, blocks.OutboundMessage):
            return admitted
        return admitted[1]

    def budget(self, run_id: str, limits: Limits) -> CallBudget:
        """What a follow-up's call holds its worst case against (see `LedgerBudget`)."""
        return LedgerBudget(self._ledger, run_id, limits)

    async def _admission(
        self,
        request: RunRequest,
        worst_case: Decimal | None,
        *,
        models: str,
        run_id: str | None = None,
    ) -> tuple[Reservation, Limits] | blocks.OutboundMessage:
        """The reservation and the budgets the run goes on under, or the reply saying why it
        may not start: a channel outside the admins' allow-list, or a budget (checked and the
        run recorded in one transaction, so racing instances cannot overspend). Budgets are
        read from the ledger at every run, so an admin's change applies at once on every
        instance. `worst_case` None means a model is unpriced: refused when budgets are set.
        With `models`, the run reserves what recent runs of those models cost (p95)."""
        current = await self._governance.budget_settings(
            request.team_id, initial_settings(self._settings)
        )
        if not current.allows(request.channel_id):
            _not_started(request, None, "channel not allowed", "outside the admins' allow-list")
            return blocks.channel_not_allowed_message(current.allowed_channels)
        limits = Limits(
            current.user_daily_usd,
            current.workspace_monthly_usd,
            current.channel_budget(request.channel_id),
        )
        if worst_case is None and limits.any:
            _not_started(request, None, "budget", "a model is unpriced, so no worst case")
            self.metrics.refused("unpriced")
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
            _not_started(request, result.run_id, "budget", f"{result.budget} budget")
            self.metrics.refused(result.budget)
            return blocks.budget_refused_message(result, admins=await self._admins())
        return result, limits

    async def _admins(self) -> list[str]:
        try:
            return await workspace_admins(self._settings, self._poster.client)
        except SlackApiError as exc:
            log.warning("could not list admins for a refusal: %s", slack_error(exc))
            return sorted(self._settings.admins)

    async def wait_idle(self) -> None:
        """Return once no run is in flight."""
        while busy := self._busy():
            await asyncio.gather(*busy, return_exceptions=True)

    async def drain(self, grace_s: float, *, suspend_s: float = SUSPEND_S) -> None:
        """Let runs in flight finish for `grace_s`, then suspend the rest: their calls in
        flight are closed and recorded, and they stay open, to be resumed by the next
        instance that starts (or by a live one). A run that ended is never rewritten."""
        if busy := self._busy():
            running = self._running()
            log.info(
                "draining: letting %s finish",
                _runs(len(running)),
                extra=fields(grace_s=grace_s),
            )
            _, pending = await asyncio.wait(busy, timeout=grace_s)
            left = running & self._running()
            for stop in list(self._stops.values()):
                stop.suspend()
            for task in list(self._suspendable):
                task.cancel()
            _, stuck = await asyncio.wait(pending, timeout=suspend_s) if pending else ((), ())
            if stuck:
                # Runs that did not heed the suspension (blocked on Slack, say) are cancelled:
                # their workflows stay pending all the same.
                for waiting in [*self._workflow_tasks.values(), *stuck]:
                    waiting.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            finished = len(running) - len(left)
            log.info(
                "drained: %s finished, %d left to resume after the restart",
                _runs(finished),
                len(left),
                extra=fields(finished=finished, suspended=len(left)),
            )
        else:
            log.info("no runs in flight")

    async def _reserve(
        self, request: RunRequest, run_id: str
    ) -> tuple[Reservation, Limits] | blocks.OutboundMessage:
        """The run's reservation (the discussion counted in its worst case), or why not."""
        worst_case = self._pipeline.worst_case_usd(request.question, thread=request.thread or "")
        models = ",".join(self._settings.models)
        return await self._admission(request, worst_case, models=models, run_id=run_id)

    async def _open_thread(self, request: RunRequest, run_id: str) -> str:
        """Post the run's first message (in `request.thread_ts` when set); returns its ts."""
        status = blocks.status_message(
            asker_id=request.user_id,
            question=request.question,
            status=blocks.planning_status(self._settings.strategy_model),
            stop_run_id=run_id,
            web_link=self._settings.run_page_url(run_id),
        )
        mark = run_metadata(run_id, None)
        where = request.thread_ts
        # A first message whose answer was lost is found by its tag, not posted twice.
        tag = Tag(run_id, "top.1")
        try:
            top_ts = await self._poster.post(
                request.channel_id, status, thread_ts=where, metadata=mark, tag=tag
            )
        except SlackApiError as exc:
            if slack_error(exc) != "not_in_channel" or not await self._join(request.channel_id):
                raise ChannelUnavailable(slack_error(exc)) from exc
            top_ts = await self._poster.post(
                request.channel_id, status, thread_ts=where, metadata=mark, tag=tag
            )
        # A question too long for the first message continues in its thread, before the plan.
        rest = blocks.status_overflow_messages(asker_id=request.user_id, question=request.question)
        try:
            for number, message in enumerate(rest, start=1):
                await self._poster.post(
                    request.channel_id,
                    message,
                    thread_ts=where or top_ts,
                    tag=Tag(run_id, f"question-rest.{number}"),
                )
        except BaseException:
            # The run will not start: the first message must not stay "⏳ planning" with a
            # Stop button that stops nothing.
            await self._close_top(request, top_ts)
            raise
        return top_ts

    async def _close_top(self, request: RunRequest, top_ts: str) -> None:
        problem = "the question could not be posted in full, so the run did not start"
        message = blocks.status_message(
            asker_id=request.user_id,
            question=request.question,
            status=blocks.failed_status(f"{problem}; nothing was spent"),
        )
        try:
            await self._poster.update(request.channel_id, top_ts, message)
        except SLACK_FAILURES as exc:
            log.warning(
                "could not close the first message of a run that did not start: %s", describe(exc)
            )

    async def _join(self, channel_id: str) -> bool:
        try:
            await self._poster.client.conversations_join(channel=channel_id)
        except SlackApiError as exc:
            log.info("could not join %s: %s", channel_id, slack_error(exc))
            return False
        return True

    async def _run(
        self,
        run_id: str,
        request: RunRequest,
        renderer: ThreadRenderer,
        limits: Limits,
        stop: RunStop,
    ) -> str:
        budget = LedgerBudget(self._ledger, run_id, limits)
        started = time.monotonic()
        steps = engine.DurableSteps(
            run_id, self._guard, on_cancel=partial(self._cancelled, run_id, stop)
        )
        # The pipeline only queues its events; this run's consumer pulls them in order and
        # writes each to the ledger, then to the thread, so a slow Slack never holds up a
        # model's stream (drafts it has fallen behind on are skipped). A call's record is
        # the exception: written the moment the call returns, before it is queued, so it
        # settles the call's budget hold before the next call asks the budget.
        feed = EventFeed()

        async def emit(event: Event) -> None:
            if isinstance(event, CallFinished):
                await self._to_ledger(run_id, event)
            await feed.emit(event)

        consumer = asyncio.create_task(
            self._consume(feed, run_id, request, renderer, stop), name=f"events-{run_id}"
        )
        try:
            try:
                await self._pipeline.run(
                    request.question,
                    emit=emit,
                    thread=request.thread,
                    budget=budget,
                    stop=stop,
                    steps=steps,
                    resumable=True,
                )
            finally:
                feed.close()
                await _drained(consumer)  # every event queued is written, however it ended
            consumer.result()  # a bug in the consumer is the run's bug
        except (asyncio.CancelledError, RunSuspended):
            # A shutdown: the run stays open and resumes after the restart, where it was.
            log.info("run suspended for a restart", extra=fields(run_id=run_id))
            await renderer.suspend()
            raise asyncio.CancelledError from None
        except BaseException as exc:
            if engine.taken_over(exc):
                # Another instance took the run over (this one was frozen, and found dead):
                # it writes nothing more, and posts nothing more, for it. (A cancellation is
                # not that: the model steps turn it into the run's stop, which writes the
                # run's ending, see `_cancelled`.)
                log.warning("run taken over", extra=fields(run_id=run_id))
                renderer.fence()
                raise engine.first_lost(exc) from None
            if not isinstance(exc, Exception):
                raise
            log.exception("run %s failed with a bug", run_id, extra=fields(run_id=run_id))
            self.metrics.runs.labels("failed").inc()
            await self._ledger.finish_run(
                run_id, "failed", elapsed_s=time.monotonic() - started, error="internal error"
            )
            await renderer.bug()
            return "failed"
        await self._after(request.team_id)
        return "ended"

    async def _consume(
        self,
        feed: EventFeed,
        run_id: str,
        request: RunRequest,
        renderer: ThreadRenderer,
        stop: RunStop,
    ) -> None:
        try:
            async for event in feed:
                if not isinstance(event, CallFinished):  # written already
                    await self._to_ledger(run_id, event)
                self.observe(run_id, request, event)
                await renderer(event)
        except Exception:
            stop.stop("an internal error stopped this run")  # no more calls paid for nothing
            raise

    async def _guard(self) -> None:
        """Before each model call: this instance must still hold its lease (`Liveness`)."""
        if self.lease is not None:
            await self.lease.check()

    async def retry(
        self, run: RunInfo, index: int, *, by: str, click: str | None = None
    ) -> blocks.OutboundMessage:
        """Illustrate component `index` of `run` once more, for `by`, from what the ledger
        keeps (so on any instance): admitted under the budgets as a follow-up of the run
        (billed to `by`), posted in its thread, as a durable workflow whose id is derived
        from `click` (what identifies the click: a replayed click starts nothing twice, on
        any instance). Only a component whose example failed, once the run has ended, and
        one retry at a time per component across instances (a ledger claim: a second click
        is told the first is under way). Returns the reply for `by`."""
        if run.status == "running":
            return blocks.retry_while_running_message()
        kept = await self._ledger.kept_strategy(run.id)
        if kept is None or run.thread_ts is None:
            return blocks.retry_unavailable_message()
        if index not in kept.failed or index >= len(kept.strategy.components):
            return blocks.retry_not_failed_message()
        name = kept.strategy.components[index].name
        retry_id = run_id_for(f"retry:{run.id}:{index}:{click}" if click else None)
        if click and await self.engine.status(retry_id) is not None:
            return blocks.retry_under_way_message(name=name)  # this very click, replayed
        key, claimed_at = f"retry:{run.id}:{index}", datetime.now(UTC)
        if not await self._claims.claim(key, ttl=retry_claim_ttl(self._settings), now=claimed_at):
            return blocks.retry_under_way_message(name=name)
        request = RunRequest(
            team_id=run.team_id,
            channel_id=run.thread_channel or run.channel_id,
            user_id=by,
            question=kept.question,
            thread_ts=run.thread_ts,
            parent_run_id=run.id,
        )
        handed_over = False  # from then on the retry's workflow releases the claim
        try:
            worst_case = self._pipeline.example_worst_case_usd(kept.question)
            admitted = await self.admit_as(request, worst_case, run_id=retry_id)
            if isinstance(admitted, blocks.OutboundMessage):
                return admitted
            claim = (key, claimed_at)
            order = RetryOrder(
                retry_id, run.id, request, kept.strategy, index, admitted, claim, self.host
            )
            handle = await self.engine.start(retry_id, self.retry_workflow, order)
            if handle is None:
                return blocks.retry_under_way_message(name=name)  # replayed on another instance
            handed_over = True
            self.own(quietly(handle), name=f"retry-{retry_id}")
        finally:
            if not handed_over:
                await self._release(key, claimed_at)
        return blocks.retry_started_message(name=name)

    async def execute_retry(self, order: RetryOrder) -> str:
        """The Retry, inside its workflow: its one model call a durable step (its record
        keyed, so a resumed retry never counts it twice); the claim given back however it
        ends (a bug and a cancellation included), so the next Retry of that component may go."""
        try:
            with self.working():
                await self._retry(
                    order.retry_id,
                    order.run_id,
                    order.request,
                    order.strategy,
                    order.index,
                    self.budget(order.retry_id, order.limits),
                )
        finally:
            await self._release(*order.claim)
        return "ended"

    async def _release(self, key: str, claimed_at: datetime) -> None:
        """Give the claim back, to the end even when this task is being cancelled (a
        shutdown): the task ends only once the claim is free, so a drain that has waited for
        it leaves no claim behind for the next click to stumble on."""
        release = asyncio.ensure_future(self._claims.release(key, claimed_at=claimed_at))
        try:
            await asyncio.shield(release)
        except asyncio.CancelledError:
            await asyncio.wait({release})
            _released(release, key)
            raise
        except (LedgerError, OSError, TimeoutError):
            _released(release, key)

    async def _retry(
        self,
        retry_id: str,
        run_id: str,
        request: RunRequest,
        strategy: Strategy,
        index: int,
        budget: CallBudget,
    ) -> None:
        async def emit(event: Event) -> None:
            await self.record(retry_id, request, event)
            for message in blocks_for_retry(event, run_id=run_id, by=request.user_id, total=total):
                await self._post_retry(request, message)

        total = len(strategy.components)
        steps = engine.DurableSteps(retry_id, self._guard)
        try:
            await self._pipeline.example_again(
                request.question, strategy, index, emit=emit, budget=budget, steps=steps
            )
        except Exception:
            log.exception("retry %s of run %s failed with a bug", retry_id, run_id)
            self.metrics.runs.labels("failed").inc()
            await self._ledger.finish_run(retry_id, "failed", elapsed_s=0.0, error="internal error")
            await self._retry_bug(request, strategy.components[index].name)

    async def _post_retry(self, request: RunRequest, message: blocks.OutboundMessage) -> None:
        """Post one of a retry's messages. The call behind it is billed and recorded already:
        a message Slack refuses must not end the retry as a bug (and close its ledger row as
        failed); what Slack refused, even cut smaller, is named in the thread."""
        channel, thread_ts = request.channel_id, request.thread_ts
        try:
            await self._poster.post(channel, message, thread_ts=thread_ts)
            return
        except Undelivered as exc:
            lost, error = list(exc.lost), exc.error
        except SlackApiError as exc:
            lost, error = [message], slack_error(exc)
        except SLACK_FAILURES as exc:
            log.error("could not post a retry's reply in thread %s: %s", thread_ts, describe(exc))
            return
        log.error("Slack refused a retry's reply in thread %s: %s", thread_ts, error)
        notice = blocks.undelivered_message(what="the retried example", error=error, lost=lost)
        try:
            await self._poster.post(channel, notice, thread_ts=thread_ts)
        except (Undelivered, *SLACK_FAILURES) as exc:
            log.error("could not say so in thread %s: %s", thread_ts, describe(exc))

    async def _retry_bug(self, request: RunRequest, name: str) -> None:
        """Say in the thread that a retry died of a bug, rather than leave it unanswered."""
        problem = (
            f"an internal error stopped the retry of {name}; it has been logged for the operators"
        )
        try:
            await self._poster.post(
                request.channel_id, blocks.error_message(problem), thread_ts=request.thread_ts
            )
        except SLACK_FAILURES as exc:
            log.warning("could not say that a retry failed: %s", describe(exc))

    async def _after(self, team_id: str) -> None:
        if self.on_finished is None:
            return
        try:
            await self.on_finished(team_id)
        except Exception:
            # The run is over and recorded; a failed follow-up must not end its task in error.
            log.exception("after-run check for team %s failed", team_id)

    async def record(self, run_id: str, request: RunRequest, event: Event) -> None:
        """Write the event to the ledger, then count and log it: what every run does with its
        events, follow-ups (a Retry, a thread's question or example) included."""
        await self._to_ledger(run_id, event)
        self.observe(run_id, request, event)

    def observe(self, run_id: str, request: RunRequest, event: Event) -> None:
        """Count the event, and write the per-call (DEBUG) and per-run (INFO) log lines."""
        self.metrics.observe(event)
        match event:
            case CallFinished(call=call):
                log.debug("model call", extra=fields(run_id=run_id, **call_fields(call)))
            case RunFinished() | RunFailed():
                log.info("run ended", extra=fields(**run_fields(run_id, request, event)))
            case _:
                pass

    async def _to_ledger(self, run_id: str, event: Event) -> None:
        if self._pages is not None:
            await self._pages.record(run_id, event)
        match event:
            case CallFinished(call=call):
                # Written with its budget hold's key: the record settles the hold.
                await self._ledger.record_call(run_id, call, key=call.key)
            case StrategyReady(strategy=strategy):
                # Kept so that a Retry of a failed example can be served by any instance.
                await self._ledger.record_strategy(run_id, strategy)
            case RunFinished(elapsed_s=elapsed):
                await self._ledger.finish_run(run_id, status="finished", elapsed_s=elapsed)
            case RunFailed(reason=reason, elapsed_s=elapsed, interrupted=interrupted):
                status: EndStatus = "interrupted" if interrupted else "failed"
                await self._ledger.finish_run(
                    run_id, status=status, elapsed_s=elapsed, error=reason
                )
            case _:
                pass


def retry_claim_ttl(settings: Settings) -> timedelta:
    """The longest a Retry can hold its claim: its one call's timeout for each attempt the
    SDK makes, and time to post. An instance that dies mid-retry frees it after this."""
    attempts = settings.anthropic_max_retries + 1
    return timedelta(seconds=attempts * settings.call_timeout_s + 300)


def call_fields(call: CallRecord) -> dict[str, object]:
    """One model call for a DEBUG line: model, role, latency, request-id, usage."""
    return {
        "model": call.model,
        "role": call.role,
        "outcome": call.outcome,
        "latency_s": round(call.latency_s, 3),
        "request_id": call.request_id,
        "usage": token_kinds(call.usage),
        "cost_usd": usd(call.cost_usd),
    }


def run_fields(run_id: str, request: RunRequest, end: RunFinished | RunFailed) -> dict[str, object]:
    """One run for its INFO line, with the figures its cost footer shows."""
    cost = end.cost
    return {
        "run_id": run_id,
        "kind": "run" if request.parent_run_id is None else "follow-up",
        "parent_run": request.parent_run_id,
        "team": request.team_id,
        "channel": request.channel_id,
        "user": request.user_id,
        "outcome": run_outcome(end),
        "calls": {m.model: m.calls for m in cost.by_model},
        "tokens_in": sum(m.usage.prompt_tokens for m in cost.by_model),
        "tokens_out": sum(m.usage.output_tokens for m in cost.by_model),
        "cost_usd": usd(cost.total_usd),
        "elapsed_s": round(end.elapsed_s, 1),
    }


def usd(amount: Decimal | None) -> str:
    """Four decimals, half up, as the cost footer rounds; `unpriced` when unknown."""
    if amount is None:
        return "unpriced"
    return str(amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def _not_started(request: RunRequest, run_id: str | None, why: str, detail: str) -> None:
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


def blocks_for_retry(
    event: Event, *, run_id: str, by: str, total: int
) -> list[blocks.OutboundMessage]:
    """What a retried component posts in its run's thread: the example (or its failure, with
    Retry again), then who retried it and what it cost."""
    match event:
        case ExampleReady(index=i, component=component, markdown=markdown, model=model):
            return blocks.example_messages(
                index=i + 1, total=total, component=component, markdown=markdown, model=model
            )
        case ExampleFailed(index=i, component=component, reason=reason, model=model):
            failed = blocks.example_failed_message(
                index=i + 1,
                total=total,
                component=component,
                reason=reason,
                model=model,
                retry_run_id=run_id,
            )
            return [failed]
        case RunFinished(cost=cost, elapsed_s=elapsed):
            return [blocks.retried_message(retried_by=by, cost=cost, elapsed_s=elapsed)]
        case _:
            return []


def ephemeral(message: blocks.OutboundMessage) -> dict[str, Any]:
    """Keyword arguments for Bolt's `respond`: a reply only the asker sees."""
    return {"text": message.text, "blocks": list(message.blocks), "response_type": "ephemeral"}


def _runs(count: int) -> str:
    """ "1 run", "2 runs": the drain's log lines read as written."""
    return f"{count} run" if count == 1 else f"{count} runs"


async def quietly(handle: Any) -> None:
    """Wait for a workflow's end; how it ended was logged and told where it ended."""
    try:
        await handle.get_result()
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError) and asyncio.current_task() is not None:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        log.debug("a run's workflow ended without a result: %s", describe(exc))


async def _tell(respond: Respond, message: blocks.OutboundMessage) -> None:
    await respond(**ephemeral(message))


class PrivateTo:
    """A private reply by `chat.postEphemeral` (for a run resumed where no `respond` is)."""

    def __init__(
        self, poster: Poster, channel: str, user: str, *, thread_ts: str | None = None
    ) -> None:
        self._poster, self._channel, self._user = poster, channel, user
        self._thread_ts = thread_ts

    async def __call__(self, **message: Any) -> None:
        message.pop("response_type", None)
        if self._thread_ts is not None:
            message["thread_ts"] = self._thread_ts
        try:
            await self._poster.client.chat_postEphemeral(
                channel=self._channel, user=self._user, **message
            )
        except SLACK_FAILURES as exc:
            log.warning("could not reply privately to the asker: %s", describe(exc))


async def _drained(consumer: asyncio.Task[None]) -> None:
    """Wait for a run's consumer to write what is queued, even while the run is being
    cancelled; a cancellation that comes meanwhile cancels it too (it is stuck on Slack)."""
    try:
        await asyncio.shield(asyncio.wait({consumer}))
    except asyncio.CancelledError:
        consumer.cancel()
        await asyncio.wait({consumer})
        raise


class EventFeed:
    """A run's events, queued by the pipeline as they happen and pulled in order by one
    consumer (`async for`). A strategy draft that a newer draft, or the strategy itself,
    has overtaken in the queue is skipped: it would be shown only to be replaced."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[int, Event] | None] = asyncio.Queue()
        self._last_draft = 0  # the number of the latest draft (or strategy) queued
        self._count = 0

    async def emit(self, event: Event) -> None:
        self._count += 1
        if isinstance(event, StrategyDraft | StrategyReady):
            self._last_draft = self._count
        self._queue.put_nowait((self._count, event))

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (item := await self._queue.get()) is not None:
            number, event = item
            if isinstance(event, StrategyDraft) and number < self._last_draft:
                continue
            yield event


def _released(release: asyncio.Future[Any], key: str) -> None:
    """Log a claim that could not be given back (it lapses by itself)."""
    if release.cancelled():
        return
    problem = release.exception()
    if problem is not None:
        log.warning("could not release claim %s (it lapses by itself): %s", key, problem)
