"""Runs and their calls: admitting a run, writing each call durably, closing the run.

`RunBook` inserts runs (`start_run` unchecked, `reserve_run` under the budgets in one locked
transaction), writes each call with its run's running totals and its `call_days` row in one
transaction committed before `record_call` returns, closes runs (`finish_run`), and after a
crash marks the runs a dead process left `running` as interrupted and lists their threads.
It keeps each run's strategy (`record_strategy`) for a Retry of one of its examples
(`kept_strategy`); the strategy is private text like the question, so it is kept only when
questions are, and never handed back for a run whose question is gone.
The all-strategy-model cost of a call is computed at record time with the ledger's price
table, so a later model change does not rewrite history.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args

from bot.core.models import Strategy
from bot.core.pricing import PriceTable
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger.budgets import Budgets, Limits
from bot.ledger.driver import Conn, Driver, Row, day_number, now_utc, require_run
from bot.ledger.migrations import CALL_DAYS_COLUMNS
from bot.ledger.types import (
    BudgetName,
    BudgetRefusal,
    BudgetStop,
    CallHold,
    EndStatus,
    FollowUpTotals,
    KeptStrategy,
    LedgerError,
    Reservation,
    RunInfo,
    from_nanos,
    strategy_from_json,
    strategy_to_json,
    to_nanos,
)


class RunBook:
    """The `runs` and `calls` tables: every write a run makes, and reading one run back."""

    def __init__(
        self,
        db: Driver,
        *,
        budgets: Budgets,
        prices: PriceTable,
        strategy_model: str,
        store_questions: bool,
        owner: Callable[[], str],
    ) -> None:
        self._db = db
        self._owner = owner  # this instance's id (claimed at start)
        self._budgets = budgets
        self._prices = prices
        self._strategy_model = strategy_model
        self._store_questions = store_questions

    async def start_run(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        question: str,
        now: datetime | None = None,
    ) -> str:
        """Record a run with no budget check; returns its id."""
        run = _NewRun(team_id, channel_id, user_id, question, now_utc(now))
        async with self._db.write() as c:
            return await self._insert(c, run, reserved=0)

    async def reserve_run(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        question: str,
        worst_case_usd: Decimal,
        user_budget: Decimal | None,
        workspace_budget: Decimal | None,
        parent_run_id: str | None = None,
        channel_budget: Decimal | None = None,
        models: str = "",
        now: datetime | None = None,
        run_id: str | None = None,
    ) -> Reservation | BudgetRefusal:
        """Check what is left and insert the run with its reservation, in one transaction.

        A refusal is recorded as a `refused` run (no calls, counts toward nothing) so that
        admins can see refusals; the run is otherwise `running` and holds `worst_case_usd`.
        `parent_run_id` makes it a follow-up of that run, asked and answered in its thread.
        `run_id` names the run (a workflow's id): reserving it again returns what the first
        reservation decided, and changes nothing.
        """
        run = _NewRun(team_id, channel_id, user_id, question, now_utc(now), parent_run_id)
        limits = Limits(user_budget, workspace_budget, channel_budget)
        async with self._db.write(lock_key=f"orchestrate.budget:{team_id}") as c:
            if run_id is not None:
                rows = await c.fetch(
                    "SELECT status, reserved_nanos, error FROM runs WHERE id = ?", run_id
                )
                if rows:
                    return _decided(run_id, rows[0], worst_case_usd)
            reserve = worst_case_usd
            if limits.any:
                reserve = await self._budgets.likely_cost(
                    c, team_id=team_id, models=models, worst_case=worst_case_usd
                )
            refusal = await self._budgets.refusal(
                c,
                team_id=team_id,
                user_id=user_id,
                worst_case=reserve,
                limits=limits,
                now=run.at,
                channel_id=channel_id,
            )
            run_id = await self._insert(
                c, run, reserved=to_nanos(reserve), models=models,
                status="running" if refusal is None else "refused",
                error=None if refusal is None else refusal.reason, run_id=run_id,
            )  # fmt: skip
        if refusal is None:
            return Reservation(run_id, worst_case_usd=worst_case_usd, reserved_usd=reserve)
        return replace(refusal, run_id=run_id)

    async def get_run(self, run_id: str) -> RunInfo | None:
        async with self._db.read() as c:
            rows = await c.fetch(_SELECT_RUN, run_id)
        return self._run_info(rows[0]) if rows else None

    async def followups(self, run_id: str) -> FollowUpTotals:
        """The follow-up runs answered in `run_id`'s thread, with what their calls cost."""
        async with self._db.read() as c:
            rows = await c.fetch(
                "SELECT COUNT(*), COALESCE(SUM(cost_nanos), 0), COALESCE(SUM(unpriced_calls), 0)"
                " FROM runs WHERE parent_run_id = ? AND status <> 'refused'",
                run_id,
            )
        count, cost, unpriced = rows[0]
        return FollowUpTotals(int(count), from_nanos(int(cost)), int(unpriced))

    async def reserve_call(
        self, run_id: str, *, worst_case_usd: Decimal, limits: Limits, now: datetime | None = None
    ) -> CallHold | BudgetStop:
        """Hold one model call's worst case against the run's budgets, or say why it may not
        start (see `Budgets.reserve_call`). Record the call with `key=hold.key` to settle."""
        return await self._budgets.reserve_call(
            run_id, worst_case=worst_case_usd, limits=limits, now=now
        )

    async def release_call(self, hold: CallHold) -> None:
        """Give back a hold whose call will not be recorded."""
        await self._budgets.release_call(hold)

    async def set_thread(self, run_id: str, channel: str, ts: str) -> None:
        async with self._db.write() as c:
            changed = await c.execute(
                "UPDATE runs SET thread_channel = ?, thread_ts = ? WHERE id = ?",
                channel,
                ts,
                run_id,
            )
        require_run(changed, run_id)

    @property
    def stores_questions(self) -> bool:
        """Whether questions (and so strategies, their substance) are kept."""
        return self._store_questions

    async def record_strategy(
        self, run_id: str, strategy: Strategy, *, now: datetime | None = None
    ) -> None:
        """Keep `run_id`'s strategy (written again, it is replaced: a replayed write is
        harmless). Nothing is kept when questions are not: it is the question's substance."""
        if not self._store_questions:
            return
        text = json.dumps(strategy_to_json(strategy), ensure_ascii=False)
        async with self._db.write() as c:
            if not await c.fetch("SELECT 1 FROM runs WHERE id = ?", run_id):
                raise LedgerError(f"no run {run_id!r} in the ledger: start_run first")
            await c.execute(
                "INSERT INTO run_strategies (run_id, strategy, recorded_at) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET strategy = excluded.strategy,"
                " recorded_at = excluded.recorded_at",
                run_id,
                text,
                self._db.to_db_time(now_utc(now)),
            )

    async def kept_strategy(self, run_id: str) -> KeptStrategy | None:
        """The question, strategy and failed components (not illustrated by a Retry since) of
        `run_id`, or None when the ledger does not have them (questions not kept, a question
        since erased, a run from before strategies were kept, or no such run)."""
        async with self._db.read() as c:
            rows = await c.fetch(
                "SELECT r.question, s.strategy FROM run_strategies s"
                " JOIN runs r ON r.id = s.run_id"
                " WHERE s.run_id = ? AND r.question IS NOT NULL",
                run_id,
            )
            if not rows:
                return None
            # Failed in the run, and not illustrated since by a Retry (a follow-up with no
            # plan call of its own: a question asked in the thread plans anew, so its
            # component numbers are another strategy's). A Retry that failed again leaves
            # the component open; one that succeeded closes it, so its button cannot re-bill.
            failed = await c.fetch(
                "SELECT component_index FROM calls WHERE role = 'example'"
                " AND component_index IS NOT NULL AND (run_id = ? OR run_id IN ("
                "  SELECT f.id FROM runs f WHERE f.parent_run_id = ? AND NOT EXISTS ("
                "   SELECT 1 FROM calls p WHERE p.run_id = f.id AND p.role = 'plan')))"
                " GROUP BY component_index"
                " HAVING SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) = 0",
                run_id,
                run_id,
            )
        question, text = rows[0]
        return KeptStrategy(
            question=str(question),
            strategy=strategy_from_json(json.loads(text)),
            failed=frozenset(int(index) for (index,) in failed),
        )

    async def record_call(
        self,
        run_id: str,
        call: CallRecord,
        *,
        key: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Write one call and its run's running totals; committed (durable) on return.

        `key` identifies the call across retries: a second write with the same key changes
        nothing and returns False. Without one, the call gets a fresh key. A call held
        against the budgets is written with its hold's key: the same transaction deletes the
        hold, settling it to the call's real cost.
        """
        cost = None if call.cost_usd is None else to_nanos(call.cost_usd)
        strategy = self._prices.cost_as(self._strategy_model, call.usage)
        strategy_nanos = None if strategy is None else to_nanos(strategy)
        deltas = _run_deltas(cost, strategy_nanos)
        async with self._db.write() as c:
            owner = await c.fetch(_RUN_OWNER, run_id)
            if not owner:
                raise LedgerError(f"no run {run_id!r} in the ledger: start_run first")
            team_id, user_id, started_at = owner[0]
            if key is not None:
                await c.execute("DELETE FROM call_holds WHERE id = ?", key)
            inserted = await c.execute(
                _INSERT_CALL,
                key or str(uuid.uuid4()),
                run_id,
                team_id,
                user_id,
                started_at,
                *_call_values(call, cost, strategy_nanos),
                self._db.to_db_time(now_utc(now)),
            )
            if not inserted:
                return False  # already recorded by an earlier attempt
            await c.execute(_UPDATE_RUN_TOTALS, *deltas, run_id)
            day = day_number(self._db.from_db_time(started_at))
            cost_delta, strategy_delta, unpriced, strategy_unpriced = deltas
            await c.execute(
                _UPSERT_CALL_DAY,
                team_id, day, user_id, call.model, call.role, *_usage_values(call.usage),
                cost_delta, unpriced, strategy_delta, strategy_unpriced, int(call.usage.estimated),
            )  # fmt: skip
        return True

    async def finish_run(
        self,
        run_id: str,
        status: EndStatus,
        *,
        elapsed_s: float,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None:
        async with self._db.write() as c:
            changed = await c.execute(
                "UPDATE runs SET status = ?, finished_at = ?, elapsed_s = ?, error = ?"
                " WHERE id = ? AND status = 'running'",
                status,
                self._db.to_db_time(now_utc(now)),
                elapsed_s,
                error,
                run_id,
            )
            if not changed:
                # Ended already (a resumed run re-telling its end): an ended run is never
                # rewritten. A run that does not exist is still an error.
                changed = len(await c.fetch("SELECT 1 FROM runs WHERE id = ?", run_id))
            # Whatever the run's calls still hold (a call cut off by a stop or a shutdown)
            # is given back with its end.
            await c.execute("DELETE FROM call_holds WHERE run_id = ?", run_id)
        require_run(changed, run_id)

    async def _insert(
        self,
        c: Conn,
        run: _NewRun,
        *,
        reserved: int,
        status: str = "running",
        error: str | None = None,
        models: str = "",
        run_id: str | None = None,
    ) -> str:
        given = run_id is not None
        run_id = run_id or str(uuid.uuid4())
        await c.execute(
            "INSERT INTO runs (id, team_id, channel_id, user_id, question_chars, question,"
            " status, started_at, reserved_nanos, error, parent_run_id, owner_id, models)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_id, run.team_id, run.channel_id, run.user_id, len(run.question),
            run.question if self._store_questions else None,
            status, self._db.to_db_time(run.at), reserved, error, run.parent_run_id,
            # A workflow's run (its id given) belongs to the engine, not to an instance.
            None if given else self._owner(), models,
        )  # fmt: skip
        return run_id

    def read_row(self, row: Row) -> RunInfo:
        """A `runs` row, selected as `get_run` selects it, as a `RunInfo`."""
        return self._run_info(row)

    def _run_info(self, row: Row) -> RunInfo:
        (run_id, team, channel, user, chars, question, status, started, finished, elapsed,
         thread_channel, thread_ts, reserved, cost, calls, unpriced, error,
         parent) = row  # fmt: skip
        return RunInfo(
            id=run_id, team_id=team, channel_id=channel, user_id=user,
            question_chars=int(chars), question=question, status=status,
            started_at=self._db.from_db_time(started),
            finished_at=None if finished is None else self._db.from_db_time(finished),
            elapsed_s=elapsed, thread_channel=thread_channel, thread_ts=thread_ts,
            reserved_usd=from_nanos(int(reserved)), cost_usd=from_nanos(int(cost)),
            calls=int(calls), unpriced_calls=int(unpriced), error=error, parent_run_id=parent,
        )  # fmt: skip


def _decided(run_id: str, row: Row, worst_case_usd: Decimal) -> Reservation | BudgetRefusal:
    """What an earlier reservation of `run_id` decided, read back from its row: a refused
    run is refused again (by the budget its error names), any other goes on as admitted."""
    status, reserved, error = row
    if status == "refused":
        # The row keeps which budget refused ("refused: <name> budget"), not the figures.
        named = str(error or "").removeprefix("refused: ").removesuffix(" budget")
        budget: BudgetName = "workspace_monthly"
        for known in get_args(BudgetName):
            if named == known:
                budget = known
        zero = Decimal(0)
        return BudgetRefusal(run_id, budget, zero, zero, zero, worst_case_usd)
    return Reservation(
        run_id, worst_case_usd=worst_case_usd, reserved_usd=from_nanos(int(reserved or 0))
    )


@dataclass(frozen=True, slots=True)
class _NewRun:
    """Who asked what, where, and when: the columns every new run row starts with."""

    team_id: str
    channel_id: str
    user_id: str
    question: str
    at: datetime
    parent_run_id: str | None = None


_SELECT_RUN = (
    "SELECT id, team_id, channel_id, user_id, question_chars, question, status, started_at,"
    " finished_at, elapsed_s, thread_channel, thread_ts, reserved_nanos, cost_nanos, calls,"
    " unpriced_calls, error, parent_run_id FROM runs WHERE id = ?"
)
_RUN_OWNER = "SELECT team_id, user_id, started_at FROM runs WHERE id = ?"
_UPDATE_RUN_TOTALS = (
    "UPDATE runs SET cost_nanos = cost_nanos + ?, strategy_nanos = strategy_nanos + ?,"
    " calls = calls + 1, unpriced_calls = unpriced_calls + ?,"
    " strategy_unpriced_calls = strategy_unpriced_calls + ?"
    " WHERE id = ?"
)
_INSERT_CALL = (
    "INSERT INTO calls (call_key, run_id, team_id, user_id, run_started_at, role, model,"
    " request_id, component_index, input_tokens, output_tokens, cache_write_5m_tokens,"
    " cache_write_1h_tokens, cache_read_tokens, thinking_tokens, cost_nanos, strategy_nanos,"
    " latency_s, outcome, error, estimated, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (call_key) DO NOTHING"
)
_UPSERT_CALL_DAY = (
    f"INSERT INTO call_days ({CALL_DAYS_COLUMNS}, estimated_calls)"
    " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (team_id, day, user_id, model, role) DO UPDATE SET"
    " calls = call_days.calls + 1,"
    " input_tokens = call_days.input_tokens + excluded.input_tokens,"
    " output_tokens = call_days.output_tokens + excluded.output_tokens,"
    " cache_write_5m_tokens = call_days.cache_write_5m_tokens + excluded.cache_write_5m_tokens,"
    " cache_write_1h_tokens = call_days.cache_write_1h_tokens + excluded.cache_write_1h_tokens,"
    " cache_read_tokens = call_days.cache_read_tokens + excluded.cache_read_tokens,"
    " thinking_tokens = call_days.thinking_tokens + excluded.thinking_tokens,"
    " cost_nanos = call_days.cost_nanos + excluded.cost_nanos,"
    " strategy_nanos = call_days.strategy_nanos + excluded.strategy_nanos,"
    " unpriced_calls = call_days.unpriced_calls + excluded.unpriced_calls,"
    " strategy_unpriced_calls = call_days.strategy_unpriced_calls"
    " + excluded.strategy_unpriced_calls,"
    " estimated_calls = call_days.estimated_calls + excluded.estimated_calls"
)


def _run_deltas(cost: int | None, strategy: int | None) -> tuple[int, int, int, int]:
    # The run's all-strategy total covers priced calls only, like the report's comparison.
    priced = cost is not None
    return (
        cost or 0,
        strategy if priced and strategy is not None else 0,
        0 if priced else 1,
        1 if priced and strategy is None else 0,
    )


def _usage_values(u: TokenUsage) -> tuple[int, ...]:
    return (
        u.input_tokens, u.output_tokens, u.cache_write_5m_tokens, u.cache_write_1h_tokens,
        u.cache_read_tokens, u.thinking_tokens,
    )  # fmt: skip


def _call_values(call: CallRecord, cost: int | None, strategy: int | None) -> tuple[Any, ...]:
    return (
        call.role, call.model, call.request_id, call.component_index,
        *_usage_values(call.usage), cost, strategy, call.latency_s, call.outcome, call.error,
        int(call.usage.estimated),
    )  # fmt: skip
