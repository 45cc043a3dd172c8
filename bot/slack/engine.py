"""The run engine: DBOS Transact, on the ledger's own database.

Every run, follow-up and Retry is a DBOS workflow (`bot/slack/workflows.py`). Its id comes
from what Slack sent, so a replayed command, event or click starts nothing twice, on any
instance. Its steps (admission, the first post, each model call) are checkpointed in the
engine's tables as they return: a run that was cut off (a crash, a shutdown, a frozen
instance taken over) is resumed, its finished steps handed back rather than made again.

Where the engine keeps its tables: on PostgreSQL, in the ledger's database, schema
`dbos` (`<schema>_dbos` for a ledger kept in its own schema with `?search_path=<schema>`,
which DBOS's driver would refuse as a connection option); on SQLite, in a file beside the
ledger (`<ledger>.engine.db`), because two drivers writing one SQLite file (aiosqlite for
the ledger, SQLAlchemy for DBOS) fight for its one write lock and each then fails with
"database is locked" under load. That file is kept in write-ahead-log mode (`_write_ahead_log`).

DBOS is one object per process (its registry and its instance are global). `open_engine`
is therefore counted: a second `open_services` in the same process (two Slack front ends
in one test, say) shares the first's DBOS if it names the same database, and is refused
with a clear message if it names another.

Each instance gives DBOS a stable executor id (`bot.ledger.instances` claims a slot), so a
restarted instance resumes its own unfinished runs at launch, and a live instance takes
over the runs of one that died (`recover`), decided by the heartbeats in the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy.exc
from dbos import (
    DBOS,
    DBOSConfig,
    SetEnqueueOptions,
    SetWorkflowID,
    StepOptions,
    WorkflowHandleAsync,
)
from dbos import error as dbos_error
from dbos._dbos import StepReservation

from bot.core.claude import Reply
from bot.core.pipeline import Step
from bot.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# DBOS resumes only the workflows written under its own application version. Ours names
# the shape of the workflows' steps: change it only when their order or names change
# (runs in flight then are left to the version that wrote them).
# Version 2: a Retry's order lost its claim, and a thread order may be a bare mention's help
# (`kind="hint"`), which version 1 would answer with a run: drain version 1 before version 2
# starts taking work (a rolling upgrade of a mixed fleet must not share one queue).
ENGINE_VERSION = "orchestrate-workflows-2"
# The engine's own tables on PostgreSQL.
SCHEMA = "dbos"
START_TIMEOUT_S = 5.0  # a new run waits this long for the engine's database, then is refused
# A step's checkpoint, tried again through an outage DBOS does not retry itself (a full
# SQLite disk). Capped at 5 s, as the ledger's writes are: a try while the database is away
# is cheap, and the cap bounds how long a run sits idle once it is back. (PostgreSQL's
# connection errors DBOS retries underneath, doubling to 60 s; that cap is not ours to set.)
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 5.0
# The queue of what is asked in threads (mentions and the shortcut: follow-ups, runs in a
# thread): one partition per thread, one item at a time in it, across instances, in order.
THREADS_QUEUE = "threads"
QUEUE_POLL_S = 0.1  # how often each instance looks for queued work it may start

Handle = WorkflowHandleAsync  # a started or queued workflow: `await handle.get_result()`
# What DBOS raises when this instance lost a workflow to another (it was taken over).
Fenced = dbos_error.DBOSWorkflowConflictIDError
Cancelled = dbos_error.DBOSWorkflowCancelledError


class LeaseLost(Exception):
    """This instance was declared dead and its runs taken over: it must not act for them."""


def lost(exc: BaseException) -> bool:
    """Whether `exc` (or any exception it groups) says this instance lost its workflow: taken
    over by another instance, or cancelled."""
    return taken_over(exc) or _any(exc, Cancelled)


def taken_over(exc: BaseException) -> bool:
    """Whether `exc` (or any exception it groups) says another instance has the workflow now
    (this one was found dead): it must write and post nothing more for it. A cancellation
    is not that: a cancelled run still writes its ending."""
    return _any(exc, Fenced | LeaseLost)


def _any(exc: BaseException, kinds: Any) -> bool:
    if isinstance(exc, BaseExceptionGroup):  # `subgroup` looks through nested groups
        return exc.subgroup(lambda e: isinstance(e, kinds)) is not None
    return isinstance(exc, kinds)


def first_lost(exc: BaseException) -> BaseException:
    """The exception saying the workflow was lost, out of a group (DBOS parks on it)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if lost(inner):
                return first_lost(inner)
    return exc


class EngineError(Exception):
    """The engine cannot be opened as asked (a message for the operator)."""


def system_database_url(database_url: str) -> str:
    """Where DBOS keeps its tables for a ledger at `database_url`."""
    if database_url.startswith(("postgresql://", "postgres://")):
        return database_url
    path = database_url.removeprefix("sqlite:///").removeprefix("sqlite://")
    if path in ("", ":memory:"):
        raise EngineError("the run engine needs a ledger file; an in-memory SQLite has none")
    return f"sqlite:///{Path(path).with_name(Path(path).name + '.engine.db')}"


def _schema_of(url: str) -> tuple[str, str]:
    """The URL without its `search_path` (the ledger's schema), and the engine's schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ledger_schema = next((v for k, v in query if k == "search_path"), None)
    kept = urlencode([(k, v) for k, v in query if k != "search_path"])
    schema = SCHEMA if not ledger_schema else f"{ledger_schema}_{SCHEMA}"
    return urlunsplit(parts._replace(query=kept)), schema


def engine_config(url: str, *, executor_id: str) -> DBOSConfig:
    """DBOS's configuration for its tables at `url` (`system_database_url`)."""
    config: DBOSConfig = {
        "name": "orchestrate",
        "system_database_url": url,
        "executor_id": executor_id,
        "application_version": ENGINE_VERSION,
        "log_level": "WARNING",
        "enable_otlp": False,
    }
    if url.startswith("postgres"):
        config["system_database_url"], config["dbos_system_schema"] = _schema_of(url)
        config["sys_db_pool_size"] = 10
    return config


_lock = threading.Lock()
_open_on: str | None = None  # the database of this process's engine, while it is open
_users = 0  # the `open_engine` contexts in this process that are inside it


class Engine:
    """This process's DBOS: start, cancel and recover workflows."""

    def __init__(self, executor_id: str) -> None:
        self.executor_id = executor_id

    async def start(
        self, workflow_id: str, workflow: Callable[..., Coroutine[Any, Any, Any]] | None, *args: Any
    ) -> WorkflowHandleAsync[Any] | None:
        """Start `workflow(*args)` under `workflow_id`; None if a workflow with that id
        exists already (a replay: nothing new starts, on this or any instance).

        Inside a workflow (a re-plan started by a thread's request) the start is one of its
        steps: DBOS records it, and a resumed workflow gets the same child's handle back."""
        if workflow is None:
            raise EngineError("no workflow registered (bot.slack.workflows.register)")
        if DBOS.workflow_id is not None:
            with SetWorkflowID(workflow_id):
                return await DBOS.start_workflow_async(workflow, *args)
        # Read first, within START_TIMEOUT_S: a database away refuses before anything that
        # could start the workflow is written.
        if await _bounded_status(workflow_id) is not None:
            return None
        # Racing another instance on one id, the database lets one insert it: the other is
        # refused (`reject`), and starts nothing either.
        try:
            with SetWorkflowID(workflow_id, workflow_id_reuse_policy="reject"):
                return await DBOS.start_workflow_async(workflow, *args)
        except dbos_error.DBOSWorkflowIDInUseError:
            return None

    async def enqueue(
        self,
        workflow_id: str,
        partition: str,
        workflow: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
        order: int | None = None,
    ) -> WorkflowHandleAsync[T]:
        """Queue `workflow(*args)` under `workflow_id` in `partition` of the threads queue:
        it starts (here or on another instance) once the items queued before it in that
        partition have ended. An id queued before (a replay) queues nothing: the handle is
        the first one's.

        The queue takes a partition's items by `order` (DBOS's priority, smallest first),
        then by when they were queued (to the second, on SQLite under Python 3.11): `order`
        keeps Slack's order even where items were queued out of it."""
        await _bounded_status(workflow_id)  # as `start`: a database away refuses, never hangs
        options = SetEnqueueOptions(queue_partition_key=partition, priority=order)
        with SetWorkflowID(workflow_id), options:
            return await DBOS.enqueue_workflow_async(THREADS_QUEUE, workflow, *args)

    async def resumed(self, workflow_id: str) -> bool:
        """Whether the workflow is running again (after a restart or a takeover), not for
        the first time.

        Read outside the workflow's context: inside it, DBOS records the status read as a
        step (`DBOS.getStatus`) and hands a resumed workflow the status recorded on its
        first go (one attempt), so every resumed run would think it runs for the first time.
        """
        status = await _status_outside(workflow_id)
        return status is not None and (status.recovery_attempts or 0) > 1

    async def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow, wherever it runs: its next step is refused, and its model calls
        in flight (preemptible steps, `DurableSteps`) are cancelled by DBOS's own watcher on
        the instance that runs it, within about a second."""
        expect_cancelled(workflow_id)  # before DBOS hears of it: its log lines come after
        await DBOS.cancel_workflow_async(workflow_id)

    async def status(self, workflow_id: str) -> str | None:
        """The workflow's status (None: no such workflow); `EngineError` if the engine's
        database does not answer within START_TIMEOUT_S (a click must not hang on it)."""
        found = await _bounded_status(workflow_id)
        return None if found is None else found.status

    async def pending_on(self, workflow_id: str) -> str | None:
        """The executor a pending workflow is on; None if it is not pending (ended, queued,
        or unknown)."""
        found = await DBOS.get_workflow_status_async(workflow_id)
        if found is None or found.status != "PENDING":
            return None
        return found.executor_id

    async def pending_executors(self) -> set[str]:
        """The executors that hold unfinished workflows of this version."""
        pending = await DBOS.list_workflows_async(
            status="PENDING", app_version=ENGINE_VERSION, load_input=False, load_output=False
        )
        return {w.executor_id for w in pending if w.executor_id}

    async def recover(self, executor_ids: list[str]) -> int:
        """Take over the unfinished workflows of `executor_ids` (instances found dead, at
        least one): they resume here, from their last finished step. Their old executor, if
        it comes back, is refused its next checkpoint."""
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, executor_ids)
        return len(handles)


@contextlib.asynccontextmanager
async def open_engine(settings: Settings, *, executor_id: str) -> AsyncIterator[None]:
    """DBOS for this process, launched on the running event loop (so workflows resumed or
    taken over run beside the app's own tasks), destroyed when the last user leaves (or
    when its launch fails: the finally below is then the first user's)."""
    global _open_on, _users
    url = system_database_url(settings.database_url)
    with _lock:
        if _open_on not in (None, url):
            raise EngineError(
                "one run engine per process: this process already runs one on another database"
            )
        fresh = _open_on is None
        _open_on = url
        _users += 1
    try:
        if fresh:
            _route_logs()
            if not url.startswith("postgres"):
                _write_ahead_log(url)
            DBOS(config=engine_config(url, executor_id=executor_id))
            DBOS.launch()
            # The threads queue, stored in the engine's database: each instance's workers
            # poll it from then on, and queued work left by an instance that stopped
            # resumes as soon as it may. Registering again (another instance, a restart)
            # changes nothing.
            await DBOS.register_queue_async(
                THREADS_QUEUE, partition_concurrency=1, polling_interval_sec=QUEUE_POLL_S
            )
        yield
    finally:
        with _lock:
            _users -= 1
            last = _users == 0
            if last:
                _open_on = None
        if last:
            # Workflows still running were suspended by the runs' drain; what is left
            # is not waited for: it stays PENDING, for the next start to resume.
            await asyncio.to_thread(
                DBOS.destroy, workflow_completion_timeout_sec=0, destroy_registry=False
            )
            # DBOS made its own pool the loop's default executor, and has shut it down:
            # the loop's next `to_thread` (another engine, the ledger) needs a live one.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())


def _write_ahead_log(url: str) -> None:
    """Put the engine's SQLite file in write-ahead-log mode (the file keeps the mode, so
    every process that opens it after this uses it).

    DBOS leaves SQLite in its default rollback journal. There each checkpoint's commit
    syncs the journal, then the file, then deletes the journal. A reader (the queue's
    poller every 0.1 s, the watcher of preemptible steps every second) also holds off a
    writer's commit, and the writer then backs off in SQLite's busy handler (1, 2, 5,
    10 ms... between tries). Parallel examples that return together queue up behind each
    other's commits, and the review waits for the last one: on a quiet machine one run in
    ten took 8 to 12% longer than its critical path (BENCHMARKS.md, the pipeline's tail).
    In WAL mode a commit appends to the log and syncs it once, and readers never block the
    writer. `synchronous` stays FULL, as in the ledger, so a checkpoint still survives a
    power loss."""
    path = url.removeprefix("sqlite:///")
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=START_TIMEOUT_S)) as db:
            db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        # Changing the mode needs the file to itself: an instance of an older version may
        # hold it open. The engine works in either mode, only slower: start anyway.
        log.warning("the run engine's file stays in its rollback journal (%s)", exc)


async def cancelled(workflow_id: str) -> bool:
    """Whether the workflow was cancelled (read outside the workflow's context: inside it,
    the read would be a step, and a cancelled workflow is refused its steps)."""
    status = await _status_outside(workflow_id)
    found = status is not None and status.status == "CANCELLED"
    if found:
        expect_cancelled(workflow_id)
    return found


async def _status_outside(workflow_id: str) -> Any:
    """The workflow's status, read outside any workflow (`outside`)."""
    return await outside(lambda: DBOS.get_workflow_status(workflow_id))


async def outside(work: Callable[[], T]) -> T:
    """`work()`, called in an executor from an empty context: outside the workflow this code
    may run in, so DBOS neither records it as one of its steps (as it does a status read)
    nor refuses it there (as it does a schedule's backfill)."""
    return await asyncio.get_running_loop().run_in_executor(None, contextvars.Context().run, work)


async def _bounded_status(workflow_id: str) -> Any:
    """The workflow's status, None if there is no such workflow. DBOS waits out a database
    that is away (retrying for as long as it takes): right for a run in flight, not for one
    that has not begun nor for a click waiting for its answer. A read that cannot be made
    within START_TIMEOUT_S raises `EngineError`."""
    try:
        return await asyncio.wait_for(DBOS.get_workflow_status_async(workflow_id), START_TIMEOUT_S)
    except TimeoutError:
        raise EngineError("the run engine's database did not answer") from None


# What a workflow does when it finds itself cancelled (`DurableSteps(on_cancel=...)`): turn
# it into the run's stop, and wait to be cancelled by it (it never returns).
OnCancel = Callable[[], Awaitable[NoReturn]]


def _route_logs() -> None:
    """DBOS's log records go through the app's own handlers (and their privacy filter), not
    to a console handler of DBOS's: one line each, without the traceback DBOS attaches to
    every retry through a database outage."""
    dbos_log = logging.getLogger("dbos")
    for handler in list(dbos_log.handlers):
        dbos_log.removeHandler(handler)
    dbos_log.addHandler(logging.NullHandler())  # DBOS adds its console handler only to none
    dbos_log.propagate = True
    # In this order: the first reads the exception a record carries, the second drops it.
    for kind in (_Cancellations, _OneLine):
        if not any(isinstance(f, kind) for f in dbos_log.filters):
            dbos_log.addFilter(kind())


# Workflows this process knows to be cancelled (it cancelled them, or one of their steps was
# refused as cancelled), most recent last; bounded, as a workflow's last record may never come.
_cancelled_here: OrderedDict[str, None] = OrderedDict()
_cancelled_lock = threading.Lock()  # noted on the loop, read where DBOS logs (any thread)
CANCELLED_KEPT = 1024


def expect_cancelled(workflow_id: str) -> None:
    """Note that `workflow_id` is cancelled, so DBOS's records of it ending so are expected."""
    with _cancelled_lock:
        _cancelled_here[workflow_id] = None
        _cancelled_here.move_to_end(workflow_id)
        while len(_cancelled_here) > CANCELLED_KEPT:
            _cancelled_here.popitem(last=False)


def _expected_cancellation(workflow_id: str) -> bool:
    with _cancelled_lock:
        return workflow_id in _cancelled_here


def _forget_cancelled(workflow_id: str) -> None:
    with _cancelled_lock:
        _cancelled_here.pop(workflow_id, None)


# What DBOS logs as a workflow whose outcome it could not write ends: a cancelled one (the
# outcome is already CANCELLED), or one taken over by another instance (which writes it).
_NOT_RECORDED = re.compile(
    r"^Workflow (?P<id>\S+) (?:outcome was not recorded|was cancelled during execution)\b"
)
# What DBOS logs when an asyncio task running a workflow or a step is cancelled.
_TASK_CANCELLED = "Asyncio task cancelled for workflow or step"


class _Cancellations(logging.Filter):
    """DBOS's records of an expected cancellation, each logged as a DEBUG line of ours.

    A Stop cancels the run's workflow (`Engine.cancel`). The run then writes its own ending
    (`run ended`, and `run cancelled in the engine` when the Stop came from elsewhere); DBOS,
    failing to write the workflow's outcome over the CANCELLED one, warns that the outcome
    was not recorded, then logs the `DBOSAwaitedWorkflowCancelledError` it reads back as an
    error. Neither is news to anyone, and both would alarm an operator. Dropped, precisely:

    * the error, when the cancelled workflow it names is the one it is logged for (its own
      outcome; a workflow awaiting another that was cancelled keeps its error);
    * the warning, when this process knows the workflow is cancelled (the outcome also goes
      unwritten when another instance took the workflow over: that warning is kept);
    * DBOS's warning for an asyncio task of a workflow or a step that was cancelled: in this
      app only its own code cancels them (a Stop cutting a run's calls, the drain at a
      shutdown), and says so in its own words (`run ended`, `run suspended for a restart`).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_TASK_CANCELLED):
            log.debug("DBOS: a task of a workflow or a step was cancelled")
            return False
        if (matched := _NOT_RECORDED.match(message)) and _expected_cancellation(matched["id"]):
            log.debug("DBOS: workflow %s ended cancelled, its outcome kept", matched["id"])
            return False
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, dbos_error.DBOSAwaitedWorkflowCancelledError) and (
            error.workflow_id == DBOS.workflow_id
        ):
            _forget_cancelled(error.workflow_id)  # its last record
            log.debug("DBOS: workflow %s was cancelled", error.workflow_id)
            return False
        return True


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is not None and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({type(record.exc_info[1]).__name__})"
            record.args = None
        record.exc_info = record.exc_text = None
        return True


@dataclass(frozen=True)
class DurableSteps:
    """A workflow's model calls as DBOS steps (`bot.core.pipeline.Steps`).

    Each is preemptible: once the workflow is cancelled (a Stop, from any instance), DBOS's
    watcher cancels the call within about a second, and the call closes its stream and
    hands over what it spent. That, or a step begun after the cancellation (DBOS refuses
    it), goes to `on_cancel`; without one, DBOS's `Cancelled` is raised."""

    run_id: str
    guard: Callable[[], Awaitable[None]]  # an instance that lost its lease starts no call
    on_cancel: OnCancel | None = None

    def reserve(self, name: str) -> Step:
        reservation = DBOS.reserve_step()

        async def durable(call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
            made: list[Reply[T]] = []

            async def body() -> Reply[T]:
                await self.guard()
                reply = await call()
                if reply.call.key is None:
                    # A stable key: a step that re-runs after its record was written (but
                    # before its checkpoint) cannot count the call twice.
                    reply = replace(reply, call=replace(reply.call, key=f"{self.run_id}:{name}"))
                made.append(reply)
                return reply

            try:
                return await _checkpointed(reservation, name, body, preemptible=True)
            except Cancelled:
                if self.on_cancel is None:
                    raise
                return await self.on_cancel()
            except Fenced:
                # A call that returned between the cancellation and DBOS's watcher noticing
                # it is refused its checkpoint as if taken over. It was made and must be
                # recorded: it is handed back, and the cancellation is met at the next step.
                if made and self.on_cancel is not None and await cancelled(self.run_id):
                    return made[0]
                raise

        return durable


async def step(name: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `work` as one checkpointed step of the current workflow."""
    return await _checkpointed(DBOS.reserve_step(), name, work)


async def _checkpointed(
    reservation: StepReservation,
    name: str,
    work: Callable[[], Awaitable[T]],
    *,
    preemptible: bool = False,
) -> T:
    """Run `work` at its reserved step, waiting out an engine database that cannot be
    written. DBOS retries PostgreSQL connection errors itself, but not every error (a
    SQLite disk that is full, a connection over a Unix socket): then the checkpoint is
    tried again, at the same step, every few seconds until it lands. What `work` returned is
    kept meanwhile, so the call behind it is never made (nor paid) twice."""
    done: list[T] = []

    async def once() -> T:
        if not done:
            done.append(await work())
        return done[0]

    # DBOS logs the function of a step it sees cancelled (a shutdown) by its name: never
    # `work`'s repr, which may carry a question or a thread's text.
    once.__qualname__ = once.__name__ = f"step {name}"

    options: StepOptions = {"name": name, "retries_allowed": False, "preemptible": preemptible}
    delay = RETRY_FIRST_S
    while True:
        try:
            return await reservation.run_async(options, once)
        except Cancelled:
            # Refused, or preempted: the workflow was cancelled (a Stop, from any instance).
            if (workflow_id := DBOS.workflow_id) is not None:
                expect_cancelled(workflow_id)
            raise
        except sqlalchemy.exc.DBAPIError as exc:
            log.warning(
                "the run engine could not record step %s (%s); trying again in %.0f s",
                name,
                type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)
        # The same step id again (DBOS lets a reservation run once: a new one, same id).
        reservation = StepReservation(reservation._step_ctx)
