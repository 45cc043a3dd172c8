"""What every run does with its events: write them to the ledger, count them, log them.

`Recorder.record` is the one path for a run's events, follow-ups (a Retry, a thread's
question or example) included: the ledger first (a call's record settles its budget hold, a
run's end closes its row and releases its reservation, a strategy is kept for a Retry on any
instance), then `/metrics`, then the per-call (DEBUG) and per-run (INFO) log lines, which
carry figures, never the question or the models' text.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal

from bot.core.events import CallFinished, Event, RunFailed, RunFinished, StrategyReady
from bot.core.usage import CallRecord
from bot.ledger import EndStatus, PageLog, RunLedger
from bot.logs import fields
from bot.slack.metrics import Metrics, run_outcome, token_kinds
from bot.slack.requests import RunRequest

log = logging.getLogger(__name__)


class Recorder:
    """Writes, counts and logs the events of the runs of one process."""

    def __init__(self, ledger: RunLedger, metrics: Metrics, pages: PageLog | None) -> None:
        self._ledger = ledger
        self._metrics = metrics
        self._pages = pages  # each run's web page (bot.web), when kept

    async def record(self, run_id: str, request: RunRequest, event: Event) -> None:
        """Write the event to the ledger, then count and log it."""
        await self.to_ledger(run_id, event)
        self.observe(run_id, request, event)

    def observe(self, run_id: str, request: RunRequest, event: Event) -> None:
        """Count the event, and write the per-call (DEBUG) and per-run (INFO) log lines."""
        self._metrics.observe(event)
        match event:
            case CallFinished(call=call):
                log.debug("model call", extra=fields(run_id=run_id, **call_fields(call)))
            case RunFinished() | RunFailed():
                log.info("run ended", extra=fields(**run_fields(run_id, request, event)))

    async def bug(self, run_id: str, elapsed_s: float) -> None:
        """A run (or a Retry) ended by a bug: counted as failed, its ledger row closed."""
        self._metrics.runs.labels("failed").inc()
        await self._ledger.finish_run(run_id, "failed", elapsed_s=elapsed_s, error="internal error")

    async def to_ledger(self, run_id: str, event: Event) -> None:
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
