"""Runs in flight: each run a durable workflow, its task owned here, drained at shutdown.

`Runs` is the run registry of one process. It composes the lifecycle's parts, each in its
own module: `Admission` (the allow-list and the budgets, before any model is called),
`Opening` (the thread's first message), `Recorder` (each event to the ledger, `/metrics`
and the logs) and `Retries` (a Retry of a failed example); what it does itself is the
run's workflow and the tasks in flight.

`Runs.start` starts a run as a workflow (`orchestrate.run`) whose id comes from what Slack
sent, so a replay, on any instance, starts nothing. Inside it (`execute`) admission, the
first message and each model call are steps, kept by the engine: a run resumed after a
restart or taken over by another instance does none of them twice, and posts only the parts
of its thread not posted yet (read from their metadata tags). The pipeline queues its events;
the run's consumer pulls them in order and writes each to the ledger, then to the thread.

Each run in flight has a `RunStop`. `stop` (the Stop button's handler calls it after
writing the request to the ledger) cancels the run's workflow in the engine, wherever it
runs, and stops it at once if this process runs it. On the instance that runs it, DBOS's own
watcher cancels its model calls in flight within about a second (they are preemptible
steps, `engine.DurableSteps`), and a step begun after the cancellation is refused: either way
the run reads who asked from the ledger once and stops as a Stop clicked here would (its
calls closed and recorded, "stopped by …" in the thread, its row closed). A run taken over
by another instance writes nothing more.

`drain` lets runs finish for a grace period, then suspends the rest: their calls in flight
are closed and recorded, and their workflows stay pending, for the next start to resume. A
run that ended is never rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

import blocks
from bot.core.events import CallFinished, Event, StrategyDraft, StrategyReady
from bot.core.pipeline import Pipeline, RunStop, RunSuspended
from bot.ledger import (
    GovernanceStore,
    LedgerError,
    Limits,
    PageLog,
    RunLedger,
    StopRequests,
)
from bot.logs import fields
from bot.settings import Settings
from bot.slack import engine
from bot.slack.admission import Admission
from bot.slack.engine import Engine
from bot.slack.lease import Lease
from bot.slack.metrics import Metrics
from bot.slack.opening import Opening
from bot.slack.poster import Poster, describe
from bot.slack.progress import ProgressTarget, StreamPacing
from bot.slack.recording import Recorder
from bot.slack.render import ThreadRenderer
from bot.slack.requests import PrivateTo, Respond, RunRequest, quietly, run_id_for, tell
from bot.slack.retries import Retries, RetryOrder

log = logging.getLogger(__name__)
SUSPEND_S = 10.0  # how long suspended runs have to close their calls at a shutdown


@dataclass(frozen=True, slots=True)
class RunOrder:
    """What a run's workflow is started with (kept by the engine: plain data only)."""

    run_id: str
    request: RunRequest
    host: str


class Runs:
    """The run registry of one process: starts runs, runs their workflows, owns their tasks."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        ledger: RunLedger,
        governance: GovernanceStore,
        poster: Poster,
        settings: Settings,
        engine: Engine,
        stops: StopRequests | None = None,
        metrics: Metrics | None = None,
        pages: PageLog | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._pages = pages  # each run's web page (bot.web), when kept
        self._poster = poster
        self._settings = settings
        self.engine = engine
        self._stop_requests = stops  # who asked a run to stop (read once, when it stops)
        self._stops: dict[str, RunStop] = {}  # runs in flight in this process
        self._stream_pacing = StreamPacing()  # every run's progress stream shares the limits
        self.metrics = metrics or Metrics()
        self.metrics.track_in_flight(lambda: self.in_flight)
        self.admission = Admission(
            ledger=ledger,
            governance=governance,
            poster=poster,
            settings=settings,
            metrics=self.metrics,
        )
        self.opening = Opening(ledger=ledger, poster=poster, settings=settings)
        self.recorder = Recorder(ledger, self.metrics, pages)
        self.retries = Retries(self, pipeline=pipeline, ledger=ledger, poster=poster)
        self._tasks: set[asyncio.Task[None]] = set()
        self._suspendable: set[asyncio.Task[Any]] = set()  # see `working`
        # Each run in flight here: its thread, and the event its renderer sets once the run's
        # last message is posted (set too when the run ends, however it ends).
        self._posted: dict[str, tuple[tuple[str, str], asyncio.Event]] = {}
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
            await tell(respond, blocks.run_not_started_message())
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
        stays pending, for the next start to resume). In flight here until it ends, however
        it ends."""
        run_id = order.run_id
        current = asyncio.current_task()
        if current is not None:
            self._workflow_tasks[run_id] = current
        try:
            return await self._execute(order.request, run_id)
        finally:
            self._workflow_tasks.pop(run_id, None)
            self._stops.pop(run_id, None)
            if (thread_posted := self._posted.pop(run_id, None)) is not None:
                thread_posted[1].set()

    async def _execute(self, request: RunRequest, run_id: str) -> str:
        respond = self._replies.pop(run_id, None) or self._private_reply(request)
        # A run of the three models: its worst case counts the discussion it reads; its
        # models name the runs whose recent cost (p95) it reserves.
        worst_case = self._pipeline.worst_case_usd(request.question, thread=request.thread or "")
        models = ",".join(self._settings.models)
        admit = partial(self.admission.admit, request, worst_case, run_id=run_id, models=models)
        admitted = await engine.step("admit", admit)
        if isinstance(admitted, blocks.OutboundMessage):
            await engine.step("tell", partial(tell, respond, admitted))
            return "refused"
        opened = await engine.step("open", partial(self.opening.open, request, run_id))
        if isinstance(opened, blocks.OutboundMessage):
            await engine.step("tell", partial(tell, respond, opened))
            return "not started"
        top_ts = opened
        thread_ts = request.thread_ts or top_ts
        # Resumed after a restart or a takeover: the parts of its thread posted already (part
        # → ts) are not posted again, and the run tells its web page its events again.
        resumed: dict[str, str] | None = None
        if await self.engine.resumed(run_id):
            resumed = await self._poster.parts_posted(request.channel_id, thread_ts, run_id)
            log.info("resuming a run", extra=fields(run_id=run_id, posted=len(resumed)))
            if self._pages is not None:
                await self._pages.restart(run_id)
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
        stop = self._stops[run_id] = RunStop()
        if resumed is not None and (by := await self._stopped_by(run_id)):
            stop.stop(f"stopped by {by}", by=by)  # asked while no instance ran it
        self._posted[run_id] = ((request.channel_id, thread_ts), renderer.posted)
        self.admitted += 1
        return await self._run(request, run_id, renderer, stop, admitted)

    async def _run(
        self,
        request: RunRequest,
        run_id: str,
        renderer: ThreadRenderer,
        stop: RunStop,
        limits: Limits,
    ) -> str:
        """The pipeline under the admitted `limits`, its events written and rendered as they
        come; how it ended (a shutdown and a takeover raise)."""
        budget = self.admission.budget(run_id, limits)
        started = time.monotonic()
        steps = engine.DurableSteps(
            run_id, self.guard, on_cancel=partial(self._cancelled, run_id, stop)
        )
        # The pipeline only queues its events; this run's consumer pulls them in order and
        # writes each to the ledger, then to the thread, so a slow Slack never holds up a
        # model's stream (drafts it has fallen behind on are skipped). A call's record is
        # the exception: written the moment the call returns, before it is queued, so it
        # settles the call's budget hold before the next call asks the budget.
        feed = EventFeed()

        async def emit(event: Event) -> None:
            if isinstance(event, CallFinished):
                await self.recorder.to_ledger(run_id, event)
            await feed.emit(event)

        async def consume() -> None:
            try:
                async for event in feed:
                    if not isinstance(event, CallFinished):  # written already
                        await self.recorder.to_ledger(run_id, event)
                    self.recorder.observe(run_id, request, event)
                    await renderer(event)
            except Exception:
                stop.stop("an internal error stopped this run")  # no more calls paid for nothing
                raise

        consumer = asyncio.create_task(consume(), name=f"events-{run_id}")
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
            await self.recorder.bug(run_id, time.monotonic() - started)
            await renderer.bug()
            return "failed"
        await self._after(request.team_id)
        return "ended"

    def _private_reply(self, request: RunRequest) -> Respond:
        """How a run resumed on another instance tells the asker something privately."""
        return PrivateTo(self._poster, request.channel_id, request.user_id)

    def _progress_target(self, request: RunRequest) -> ProgressTarget | None:
        """Where the run's progress message streams to (the asker), unless it is off."""
        if not self._settings.progress:
            return None
        return ProgressTarget(request.user_id, request.team_id, self._stream_pacing)

    async def stop(self, run_id: str, *, by: str) -> None:
        """Stop `run_id` for `by`, wherever it runs: at once if this process runs it, and
        through the engine's cancellation (noticed within about a second) if another does."""
        if (here := self._stops.get(run_id)) is not None:
            here.stop(f"stopped by {by}", by=by)
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
        thread = (channel, thread_ts)
        posted = [event for where, event in self._posted.values() if where == thread]
        await asyncio.gather(*(event.wait() for event in posted))

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

    async def guard(self) -> None:
        """Before each model call: this instance must still hold its lease (`Liveness`)."""
        if self.lease is not None:
            await self.lease.check()

    async def _after(self, team_id: str) -> None:
        if self.on_finished is None:
            return
        try:
            await self.on_finished(team_id)
        except Exception:
            # The run is over and recorded; a failed follow-up must not end its task in error.
            log.exception("after-run check for team %s failed", team_id)


def _runs(count: int) -> str:
    """ "1 run", "2 runs": the drain's log lines read as written."""
    return f"{count} run" if count == 1 else f"{count} runs"


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
