"""The run engine: DBOS Transact, on the ledger's own database.

Every run, follow-up and Retry is a DBOS workflow (`bot/slack/workflows.py`). Its id comes
from what Slack sent, so a replayed command, event or click starts nothing twice, on any
instance. Its steps (admission, the first post, each model call) are checkpointed in the
engine's tables as they return: a run that was cut off (a crash, a shutdown, a frozen
instance taken over) is resumed, its finished steps handed back rather than made again.

Where the engine keeps its tables: on PostgreSQL, in the ledger's database, schema
`dbos`; on SQLite, in a file beside the ledger (`<ledger>.engine.db`), because two
drivers writing one SQLite file (aiosqlite for the ledger, SQLAlchemy for DBOS) fight for
its one write lock and each then fails with "database is locked" under load.

DBOS is one object per process (its registry and its instance are global). `open_engine`
is therefore counted: a second `open_services` in the same process (two Slack front ends
in one test, say) shares the first's engine if it names the same database, and is refused
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
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from dbos import (
    DBOS,
    DBOSConfig,
    Queue,
    SetEnqueueOptions,
    SetWorkflowID,
    StepOptions,
    WorkflowHandleAsync,
)
from dbos import error as dbos_error

from bot.core.claude import Reply
from bot.core.pipeline import Step
from bot.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# DBOS resumes only the workflows written under its own application version. Ours names
# the shape of the workflows' steps: change it only when their order or names change
# (runs in flight then are left to the version that wrote them).
ENGINE_VERSION = "orchestrate-workflows-1"
# The engine's own tables on PostgreSQL.
SCHEMA = "dbos"
START_TIMEOUT_S = 5.0  # a new run waits this long for the engine's database, then is refused
# The queue of what is asked in threads (follow-ups, Retries, runs in a thread): one
# partition per thread, one item at a time in it, across instances, in the order they came.
THREADS_QUEUE = "threads"
QUEUE_POLL_S = 0.1  # how often each instance looks for queued work it may start

# What DBOS raises when this instance lost a workflow to another (it was taken over).
Fenced = dbos_error.DBOSWorkflowConflictIDError
Cancelled = dbos_error.DBOSWorkflowCancelledError


class LeaseLost(Exception):
    """This instance was declared dead and its runs taken over: it must not act for them."""


def lost(exc: BaseException) -> bool:
    """Whether `exc` (or any exception it groups) says this instance lost its workflow: taken
    over by another instance, or cancelled."""
    if isinstance(exc, Fenced | Cancelled | LeaseLost):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(lost(e) for e in exc.exceptions)
    return False


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


def engine_config(settings: Settings, *, executor_id: str) -> DBOSConfig:
    url = system_database_url(settings.database_url)
    config: DBOSConfig = {
        "name": "orchestrate",
        "system_database_url": url,
        "executor_id": executor_id,
        "application_version": ENGINE_VERSION,
        "log_level": "WARNING",
        "enable_otlp": False,
    }
    if url.startswith("postgres"):
        config["dbos_system_schema"] = SCHEMA
        config["sys_db_pool_size"] = 10
    return config


@dataclass
class _Open:
    engine: Engine
    url: str
    users: int


_lock = threading.Lock()
_open: _Open | None = None


class Engine:
    """This process's DBOS: start, cancel and recover workflows."""

    def __init__(self, executor_id: str) -> None:
        self.executor_id = executor_id
        self._threads: Queue | None = None

    async def register_queues(self) -> Queue:
        """The threads queue, stored in the engine's database (each instance's workers poll
        it from then on). Registering again (another instance, a restart) changes nothing."""
        self._threads = await DBOS.register_queue_async(
            THREADS_QUEUE, partition_concurrency=1, polling_interval_sec=QUEUE_POLL_S
        )
        return self._threads

    async def start(
        self, workflow_id: str, workflow: Callable[..., Coroutine[Any, Any, Any]] | None, *args: Any
    ) -> WorkflowHandleAsync[Any] | None:
        """Start `workflow(*args)` under `workflow_id`; None if a workflow with that id
        exists already (a replay: nothing new starts, on this or any instance)."""
        if workflow is None:
            raise EngineError("no workflow registered (bot.slack.workflows.register)")
        # DBOS waits out a database that is away (retrying for as long as it takes): right
        # for a run in flight, not for one that has not begun. A read that cannot be made
        # within START_TIMEOUT_S refuses the start, and wrote nothing that could start it.
        try:
            existing = await asyncio.wait_for(
                DBOS.get_workflow_status_async(workflow_id), START_TIMEOUT_S
            )
        except TimeoutError:
            raise EngineError("the run engine's database did not answer") from None
        if existing is not None:
            return None
        with SetWorkflowID(workflow_id):
            # Racing another instance on one id, DBOS runs it once: the loser's handle
            # waits for the winner's outcome.
            return await DBOS.start_workflow_async(workflow, *args)

    async def enqueue(
        self,
        workflow_id: str,
        partition: str,
        workflow: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
    ) -> WorkflowHandleAsync[T]:
        """Queue `workflow(*args)` under `workflow_id` in `partition` of the threads queue:
        it starts (here or on another instance) once the items queued before it in that
        partition have ended. An id queued before (a replay) queues nothing: the handle is
        the first one's.

        On SQLite (Python 3.11) the queue orders a partition by the second an item was
        queued, then by its id: ids must sort by arrival within a partition."""
        # As `start`: a database that is away refuses the request rather than hang it.
        try:
            await asyncio.wait_for(DBOS.get_workflow_status_async(workflow_id), START_TIMEOUT_S)
        except TimeoutError:
            raise EngineError("the run engine's database did not answer") from None
        queue = self._threads or await self.register_queues()
        with SetWorkflowID(workflow_id), SetEnqueueOptions(queue_partition_key=partition):
            return await queue.enqueue_async(workflow, *args)

    async def pending(self, workflow_id_prefix: str) -> bool:
        """Whether a workflow whose id starts with the prefix is queued or running."""
        found = await DBOS.list_workflows_async(
            workflow_id_prefix=workflow_id_prefix,
            status=["ENQUEUED", "PENDING"],
            load_input=False,
            load_output=False,
            limit=1,
        )
        return bool(found)

    async def resumed(self, workflow_id: str) -> bool:
        """Whether the workflow is running again (after a restart or a takeover), not for
        the first time.

        Read outside the workflow's context: inside it, DBOS records the status read as a
        step (`DBOS.getStatus`) and hands a resumed workflow the status recorded on its
        first go (one attempt), so every resumed run would think it runs for the first time.
        """

        def read() -> Any:
            return DBOS.get_workflow_status(workflow_id)

        status = await asyncio.get_running_loop().run_in_executor(
            None, contextvars.Context().run, read
        )
        return status is not None and (status.recovery_attempts or 0) > 1

    async def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow, wherever it runs: its next step is refused, and its steps in
        flight here are cancelled by the workflow itself (see `workflows`)."""
        await DBOS.cancel_workflow_async(workflow_id)

    async def status(self, workflow_id: str) -> str | None:
        found = await DBOS.get_workflow_status_async(workflow_id)
        return None if found is None else found.status

    async def pending_executors(self) -> set[str]:
        """The executors that hold unfinished workflows of this version."""
        pending = await DBOS.list_workflows_async(
            status="PENDING", app_version=ENGINE_VERSION, load_input=False, load_output=False
        )
        return {w.executor_id for w in pending if w.executor_id}

    async def recover(self, executor_ids: list[str]) -> int:
        """Take over the unfinished workflows of `executor_ids` (instances found dead):
        they resume here, from their last finished step. Their old executor, if it comes
        back, is refused its next checkpoint."""
        if not executor_ids:
            return 0
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, executor_ids)
        return len(handles)


@contextlib.asynccontextmanager
async def open_engine(settings: Settings, *, executor_id: str) -> AsyncIterator[Engine]:
    """DBOS for this process, launched on the running event loop (so workflows resumed or
    taken over run beside the app's own tasks), destroyed when the last user leaves."""
    global _open
    url = system_database_url(settings.database_url)
    with _lock:
        if _open is not None and _open.url != url:
            raise EngineError(
                "one run engine per process: this process already runs one on another database"
            )
        fresh = _open is None
        if fresh:
            _open = _Open(Engine(executor_id), url, 0)
        assert _open is not None
        _open.users += 1
        engine = _open.engine
    try:
        if fresh:
            try:
                DBOS(config=engine_config(settings, executor_id=executor_id))
                DBOS.launch()
                # Queued work left by an instance that stopped resumes as soon as it may.
                await engine.register_queues()
            except BaseException:
                with _lock:
                    _open = None
                DBOS.destroy(destroy_registry=False)
                raise
        yield engine
    finally:
        with _lock:
            assert _open is not None
            _open.users -= 1
            last = _open.users == 0
            if last:
                _open = None
        if last:
            # Workflows still running were suspended by the runs' drain; what is left
            # is not waited for: it stays PENDING, for the next start to resume.
            await asyncio.to_thread(
                DBOS.destroy, workflow_completion_timeout_sec=0, destroy_registry=False
            )
            # DBOS made its own pool the loop's default executor, and has shut it down:
            # the loop's next `to_thread` (another engine, the ledger) needs a live one.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())


class DurableStep:
    """One model call's checkpointed step (`bot.core.pipeline.Step`)."""

    def __init__(self, run_id: str, name: str, guard: Callable[[], Awaitable[None]]) -> None:
        self._reservation = DBOS.reserve_step()
        self._key = f"{run_id}:{name}"
        self._name = name
        self._guard = guard

    async def __call__(self, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        async def body() -> Reply[T]:
            await self._guard()  # an instance that lost its lease starts no call
            reply = await call()
            if reply.call.key is None:
                # A stable key: a step that re-runs after its record was written (but
                # before its checkpoint) cannot count the call twice.
                reply = replace(reply, call=replace(reply.call, key=self._key))
            return reply

        options: StepOptions = {"name": self._name, "retries_allowed": False}
        return await self._reservation.run_async(options, body)


class DurableSteps:
    """A workflow's model calls as DBOS steps (`bot.core.pipeline.Steps`)."""

    def __init__(self, run_id: str, guard: Callable[[], Awaitable[None]]) -> None:
        self._run_id = run_id
        self._guard = guard

    def reserve(self, name: str) -> Step:
        return DurableStep(self._run_id, name, self._guard)


async def step(name: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `work` as one checkpointed step of the current workflow."""
    options: StepOptions = {"name": name, "retries_allowed": False}

    async def body() -> T:
        # DBOS logs the function of a step it sees cancelled (a shutdown): `work`'s repr
        # may carry a question or a thread's text, which never goes to the logs.
        return await work()

    body.__qualname__ = body.__name__ = f"step {name}"
    return await DBOS.run_step_async(options, body)


def workflow_status_id() -> str | None:
    """The id of the workflow this code runs in (None outside one)."""
    return DBOS.workflow_id
