"""What a run showed, kept in order for its web page: `RunPages` (`ledger.pages`).

The run owner hands every pipeline event to `record`; the ones a page draws (the strategy,
each example or its failure, the review, the end with its bill, and the models at the
start) are written to `run_events` as JSON, one row each, in the order they happened. Drafts
of the strategy and single calls are not: drafts are superseded at once, and calls are the
`calls` table's. `page` reads a run back with its follow-ups (a retry, a question asked in
its thread) and their events, so any instance can draw it; `version` is a cheap fingerprint
that changes whenever a row lands or the run's row changes, which is what a page left open
polls for.

The events are private text like the question: nothing is written when questions are not
kept (`LEDGER_STORE_QUESTIONS=false`), and the page then shows only the run's state and
bill. A write is best-effort: the page is a second view of what the Slack thread holds, so
a database that does not answer within `WRITE_TIMEOUT_S` costs the page that part (logged),
never the run its time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.core.events import (
    CallFinished,
    Event,
    ExampleFailed,
    ExampleReady,
    ReviewFailed,
    ReviewReady,
    RunFailed,
    RunFinished,
    RunStarted,
    StrategyDraft,
    StrategyReady,
)
from bot.core.models import Check, Component, Review
from bot.core.pricing import CostSummary, ModelCost
from bot.core.usage import TokenUsage
from bot.ledger.driver import Driver, now_utc
from bot.ledger.types import LedgerError, RunInfo, strategy_from_json, strategy_to_json

log = logging.getLogger(__name__)
WRITE_TIMEOUT_S = 2.0
PageEvent = (
    RunStarted
    | StrategyReady
    | ExampleReady
    | ExampleFailed
    | ReviewReady
    | ReviewFailed
    | RunFinished
    | RunFailed
)


@dataclass(frozen=True, slots=True)
class PageRun:
    """One run as its page draws it: its row and what it showed, in order."""

    run: RunInfo
    events: tuple[PageEvent, ...]


@dataclass(frozen=True, slots=True)
class RunPage:
    """A run and its follow-ups (oldest first), each with its events."""

    main: PageRun
    followups: tuple[PageRun, ...]


class RunPages:
    """The `run_events` table: the page's copy of what each run showed."""

    def __init__(self, db: Driver, *, store_questions: bool, read_run: Any) -> None:
        self._db = db
        self._store = store_questions
        self._read_run = read_run  # RunBook._run_info: one reading of a `runs` row

    async def record(self, run_id: str, event: Event, *, now: datetime | None = None) -> None:
        """Keep `event` for `run_id`'s page if a page draws it (best-effort, see above)."""
        body = event_to_json(event)
        if body is None or not self._store:
            return
        try:
            await asyncio.wait_for(self._insert(run_id, body, now), WRITE_TIMEOUT_S)
        except (LedgerError, OSError, TimeoutError) as exc:
            log.warning("the web page of run %s lost its %s: %s", run_id, body["kind"], exc)

    async def restart(self, run_id: str) -> None:
        """Forget `run_id`'s events: it was resumed after a restart and tells them again."""
        if not self._store:
            return
        try:
            async with self._db.write() as c:
                await c.execute("DELETE FROM run_events WHERE run_id = ?", run_id)
        except (LedgerError, OSError) as exc:
            log.warning("the web page of run %s could not be restarted: %s", run_id, exc)

    async def _insert(self, run_id: str, body: dict[str, Any], now: datetime | None) -> None:
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO run_events (run_id, kind, body, recorded_at) VALUES (?, ?, ?, ?)",
                run_id,
                body["kind"],
                json.dumps(body, ensure_ascii=False),
                self._db.to_db_time(now_utc(now)),
            )

    async def page(self, run_id: str) -> RunPage | None:
        """`run_id` (a follow-up is shown as its parent's page) with its follow-ups."""
        async with self._db.read() as c:
            rows = await c.fetch(f"{_SELECT_RUNS} WHERE id = ?", run_id)
            if not rows:
                return None
            main = self._read_run(rows[0])
            if main.parent_run_id is not None:
                parent = await c.fetch(f"{_SELECT_RUNS} WHERE id = ?", main.parent_run_id)
                main = self._read_run(parent[0]) if parent else main
            followups = await c.fetch(
                f"{_SELECT_RUNS} WHERE parent_run_id = ? AND status <> 'refused'"
                " ORDER BY started_at, id",
                main.id,
            )
            runs = [main, *(self._read_run(row) for row in followups)]
            events = await c.fetch(
                "SELECT run_id, body FROM run_events WHERE run_id = ?"
                " OR run_id IN (SELECT id FROM runs WHERE parent_run_id = ?) ORDER BY id",
                main.id,
                main.id,
            )
        by_run: dict[str, list[PageEvent]] = {run.id: [] for run in runs}
        for owner, body in events:
            if owner in by_run:
                by_run[owner].append(event_from_json(json.loads(body)))
        parts = [PageRun(run, tuple(by_run[run.id])) for run in runs]
        return RunPage(parts[0], tuple(parts[1:]))

    async def version(self, run_id: str) -> tuple[Any, ...]:
        """Changes whenever an event of the run (or a follow-up) lands or a run row moves."""
        async with self._db.read() as c:
            rows = await c.fetch(
                "SELECT (SELECT COUNT(*) FROM run_events e WHERE e.run_id = r.id"
                "  OR e.run_id IN (SELECT f.id FROM runs f WHERE f.parent_run_id = r.id)),"
                " r.status, r.calls,"
                " (SELECT COUNT(*) FROM runs f WHERE f.parent_run_id = r.id),"
                " (SELECT COALESCE(SUM(f.calls), 0) FROM runs f WHERE f.parent_run_id = r.id),"
                " (SELECT COUNT(*) FROM runs f WHERE f.parent_run_id = r.id"
                "  AND f.status = 'running')"
                " FROM runs r WHERE r.id = ?",
                run_id,
            )
        return tuple(rows[0]) if rows else ()


_SELECT_RUNS = (
    "SELECT id, team_id, channel_id, user_id, question_chars, question, status, started_at,"
    " finished_at, elapsed_s, thread_channel, thread_ts, reserved_nanos, cost_nanos, calls,"
    " unpriced_calls, error, parent_run_id FROM runs"
)


# The events as JSON ---------------------------------------------------------------------


def event_to_json(event: Event) -> dict[str, Any] | None:
    """The event as a page keeps it, or None for one a page does not draw."""
    match event:
        case RunStarted(models=models):
            return {"kind": "started", "models": list(models)}  # the question is the run's
        case StrategyReady(strategy=strategy, model=model):
            return {"kind": "strategy", "model": model, "strategy": strategy_to_json(strategy)}
        case ExampleReady(index=i, component=component, markdown=markdown, model=model):
            return {"kind": "example", "index": i, "model": model, "markdown": markdown,
                    "component": _component(component)}  # fmt: skip
        case ExampleFailed(index=i, component=component, reason=reason, model=model):
            return {"kind": "example_failed", "index": i, "model": model, "reason": reason,
                    "component": _component(component)}  # fmt: skip
        case ReviewReady(review=review, model=model):
            return {"kind": "review", "model": model, "review": _review(review)}
        case ReviewFailed(reason=reason, model=model):
            return {"kind": "review_failed", "model": model, "reason": reason}
        case RunFinished(cost=cost, elapsed_s=elapsed):
            return {"kind": "finished", "cost": _cost(cost), "elapsed_s": elapsed}
        case RunFailed():
            return {"kind": "failed", "reason": event.reason, "cost": _cost(event.cost),
                    "elapsed_s": event.elapsed_s, "interrupted": event.interrupted,
                    "stopped_by": event.stopped_by}  # fmt: skip
        case CallFinished() | StrategyDraft():
            return None


def event_from_json(data: dict[str, Any]) -> PageEvent:
    kind = data["kind"]
    if kind == "started":
        models = [str(m) for m in data["models"]]
        return RunStarted(question="", models=(models[0], models[1], models[2]))
    if kind == "strategy":
        return StrategyReady(strategy_from_json(data["strategy"]), str(data["model"]))
    if kind == "example":
        component = Component(**data["component"])
        return ExampleReady(int(data["index"]), component, str(data["markdown"]), data["model"])
    if kind == "example_failed":
        component = Component(**data["component"])
        return ExampleFailed(int(data["index"]), component, str(data["reason"]), data["model"])
    if kind == "review":
        return ReviewReady(_review_from(data["review"]), str(data["model"]))
    if kind == "review_failed":
        return ReviewFailed(str(data["reason"]), str(data["model"]))
    cost, elapsed = _cost_from(data["cost"]), float(data["elapsed_s"])
    if kind == "finished":
        return RunFinished(cost, elapsed)
    if kind == "failed":
        return RunFailed(str(data["reason"]), cost, elapsed, bool(data["interrupted"]),
                         data["stopped_by"])  # fmt: skip
    raise LedgerError(f"a run event of an unknown kind {kind!r}: upgrade orchestrate")


def _component(component: Component) -> dict[str, str]:
    return {"name": component.name, "instruction": component.instruction}


def _review(review: Review) -> dict[str, Any]:
    return {
        "checks": [
            {"component": c.component, "verdict": c.verdict, "reason": c.reason}
            for c in review.checks
        ],
        "gaps": list(review.gaps),
        "next_steps": list(review.next_steps),
    }


def _review_from(data: dict[str, Any]) -> Review:
    return Review(
        checks=tuple(Check(c["component"], c["verdict"], c["reason"]) for c in data["checks"]),
        gaps=tuple(data["gaps"]),
        next_steps=tuple(data["next_steps"]),
    )


def _usd(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _usd_from(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _cost(cost: CostSummary) -> dict[str, Any]:
    return {
        "by_model": [
            {"model": m.model, "calls": m.calls, "cost_usd": _usd(m.cost_usd),
             "usage": _usage(m.usage)}
            for m in cost.by_model
        ],
        "total_usd": _usd(cost.total_usd),
        "all_strategy_model_usd": _usd(cost.all_strategy_model_usd),
        "strategy_model": cost.strategy_model,
    }  # fmt: skip


def _usage(usage: TokenUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_write_5m_tokens": usage.cache_write_5m_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "thinking_tokens": usage.thinking_tokens,
        "estimated": usage.estimated,
    }


def _cost_from(data: dict[str, Any]) -> CostSummary:
    return CostSummary(
        by_model=tuple(
            ModelCost(m["model"], int(m["calls"]), TokenUsage(**m["usage"]),
                      _usd_from(m["cost_usd"]))
            for m in data["by_model"]
        ),
        total_usd=_usd_from(data["total_usd"]),
        all_strategy_model_usd=_usd_from(data["all_strategy_model_usd"]),
        strategy_model=str(data["strategy_model"]),
    )  # fmt: skip
