"""Retry of a failed example: one component illustrated again, from the ledger alone.

A Retry is served from what the ledger keeps (the run's row, its strategy and which of its
components failed), so any instance can take the click, after any restart. It is a
follow-up of the run, billed to whoever clicked, admitted under the budgets before its one
model call, and a durable workflow (`orchestrate.retry`) whose id is derived from the button
clicked (the `ts` of the message showing the failure): a double click, a replayed click and
a click reaching another instance all name the same workflow, which the engine starts once.
A retry that failed again shows a new button, whose click is a new retry; a click the budgets
refused leaves the button to a later click (after an admin raised them, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import blocks
from bot.core.events import Event, ExampleFailed, ExampleReady, RunFinished
from bot.core.models import Strategy
from bot.core.pipeline import Pipeline
from bot.ledger import Limits, RunInfo, RunLedger
from bot.slack import engine
from bot.slack.admission import Admission
from bot.slack.engine import Engine
from bot.slack.poster import SLACK_FAILURES, Poster, describe
from bot.slack.recording import Recorder
from bot.slack.requests import RunRequest, quietly, run_id_for

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 50  # ids tried per button (each a refused or failed retry before it)
ACTIVE = ("ENQUEUED", "PENDING")  # a retry's workflow that is still to end


@dataclass(frozen=True, slots=True)
class RetryOrder:
    """What a Retry's workflow is started with (plain data): the follow-up `retry_id` of
    run `run_id` (its parent), component `index` of `strategy` illustrated again under the
    admitted `limits`."""

    retry_id: str
    run_id: str
    request: RunRequest
    strategy: Strategy
    index: int
    limits: Limits
    host: str


class Host(Protocol):
    """What a Retry works with of its process's run registry (`bot.slack.runs.Runs`)."""

    engine: Engine
    host: str
    retry_workflow: Callable[[RetryOrder], Coroutine[Any, Any, str]] | None
    admission: Admission
    recorder: Recorder

    def own(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]: ...

    def working(self) -> contextlib.AbstractContextManager[None]: ...

    async def guard(self) -> None: ...


class Retries:
    """Serves the Retry clicks of one process, on its run registry's engine and tasks."""

    def __init__(
        self, runs: Host, *, pipeline: Pipeline, ledger: RunLedger, poster: Poster
    ) -> None:
        self._runs = runs
        self._pipeline = pipeline
        self._ledger = ledger
        self._poster = poster

    async def retry(
        self, run: RunInfo, index: int, *, by: str, button: str
    ) -> blocks.OutboundMessage:
        """Illustrate component `index` of `run` once more, for `by`, posted in its thread:
        only a component whose example failed, once the run has ended. `button` identifies
        the button clicked. Returns the reply for `by`."""
        if run.status == "running":
            return blocks.retry_while_running_message()
        kept = await self._ledger.kept_strategy(run.id)
        if kept is None or run.thread_ts is None:
            return blocks.retry_unavailable_message()
        if index not in kept.failed or index >= len(kept.strategy.components):
            return blocks.retry_not_failed_message()
        name = kept.strategy.components[index].name
        runs = self._runs
        try:
            retry_id, status = await self._retry_id(run.id, index, button)
        except Exception as exc:
            # The engine's database is away: nothing is started, nothing is spent.
            log.warning("could not look up the retries of run %s: %s", run.id, describe(exc))
            return blocks.run_not_started_message()
        # A retry that exists (a double click, a replay): under way while it runs, else the
        # button was used, and the thread has what it gave.
        if status in ACTIVE:
            return blocks.retry_under_way_message(name=name)
        if status is not None:
            return blocks.retry_used_message(name=name)
        request = RunRequest(
            team_id=run.team_id,
            channel_id=run.thread_channel or run.channel_id,
            user_id=by,
            question=kept.question,
            thread_ts=run.thread_ts,
            parent_run_id=run.id,
        )
        worst_case = self._pipeline.example_worst_case_usd(kept.question)
        # Admitting the same id again (a racing click) returns the first decision.
        admitted = await runs.admission.admit(request, worst_case, run_id=retry_id)
        if isinstance(admitted, blocks.OutboundMessage):
            return admitted
        order = RetryOrder(retry_id, run.id, request, kept.strategy, index, admitted, runs.host)
        try:
            handle = await runs.engine.start(retry_id, runs.retry_workflow, order)
        except Exception as exc:
            # Admitted, not started: the next click of the button takes up the same id (and
            # its reservation, which admission hands back unchanged), so nothing is lost.
            log.warning("could not start retry %s: %s", retry_id, describe(exc))
            return blocks.run_not_started_message()
        if handle is None:
            return blocks.retry_under_way_message(name=name)  # started by a racing click
        runs.own(quietly(handle), name=f"retry-{retry_id}")
        return blocks.retry_started_message(name=name)

    async def _retry_id(self, run_id: str, index: int, button: str) -> tuple[str, str | None]:
        """The id of the retry a click on `button` asks for, and its workflow's status (None:
        not started): the button's first, or the next one when that one gave no answer to
        retry from and is not running: the budgets refused it (a click before an admin
        raised them), or it ended without a new example or a new button (a bug). Clicks
        racing on one button, on any instance, find the same id."""
        for attempt in range(MAX_ATTEMPTS):
            retry_id = run_id_for(f"retry:{run_id}:{index}:{button}:{attempt}")
            status = await self._runs.engine.status(retry_id)
            if status in ACTIVE:
                return retry_id, status
            seen = await self._ledger.get_run(retry_id)
            if seen is None or seen.status not in ("refused", "failed", "interrupted"):
                return retry_id, status
        return run_id_for(None), None  # a button refused this often: no longer deduplicated

    async def execute(self, order: RetryOrder) -> str:
        """The Retry, inside its workflow: its one model call a durable step (its record
        keyed, so a resumed retry never counts it twice)."""
        request, strategy = order.request, order.strategy
        total = len(strategy.components)

        async def emit(event: Event) -> None:
            await self._runs.recorder.record(order.retry_id, request, event)
            for message in _messages(event, run_id=order.run_id, by=request.user_id, total=total):
                await self._post(request, message)

        budget = self._runs.admission.budget(order.retry_id, order.limits)
        steps = engine.DurableSteps(order.retry_id, self._runs.guard)
        with self._runs.working():
            try:
                await self._pipeline.example_again(
                    request.question, strategy, order.index, emit=emit, budget=budget, steps=steps
                )
            except Exception:
                log.exception("retry %s of run %s failed with a bug", order.retry_id, order.run_id)
                await self._runs.recorder.bug(order.retry_id, 0.0)
                await self._bug(request, strategy.components[order.index].name)
        return "ended"

    async def _post(self, request: RunRequest, message: blocks.OutboundMessage) -> None:
        """Post one of a retry's messages (its example, its failure, what it cost, or that a
        bug stopped it). The call behind it is billed and recorded already:
        a message Slack refuses must not end the retry as a bug (and close its ledger row as
        failed); what Slack refused, even cut smaller, is named in the thread."""
        channel, thread_ts = request.channel_id, request.thread_ts
        try:
            refused = await self._poster.post_or_refusal(channel, message, thread_ts=thread_ts)
        except SLACK_FAILURES as exc:
            log.error("could not post a retry's reply in thread %s: %s", thread_ts, describe(exc))
            return
        if refused is None:
            return
        lost, error = refused
        await self._poster.report_refused(
            channel, thread_ts, what="the retried example", error=error, lost=lost
        )

    async def _bug(self, request: RunRequest, name: str) -> None:
        """Say in the thread that a retry died of a bug, rather than leave it unanswered."""
        problem = (
            f"an internal error stopped the retry of {name}; it has been logged for the operators"
        )
        await self._post(request, blocks.error_message(problem))


def _messages(event: Event, *, run_id: str, by: str, total: int) -> list[blocks.OutboundMessage]:
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
