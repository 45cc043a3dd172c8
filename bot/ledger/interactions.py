"""What people do to a run from Slack: ask it to stop, and vote on its answer.

`Interactions` owns two tables. `stop_requests` holds one row per run: the first Stop click
wins (a double click or a second person changes nothing); the run, stopped through the
engine on whichever instance runs it, reads who asked with `stop_requests_for`. `votes`
holds one 👍 (+1) or 👎 (-1) per person and run, replaced when they change their mind, with
an optional reason for a 👎.
`feedback` aggregates a period's votes (by the runs' start, like the cost reports) overall
and per model set (the models a run's calls used), with the cost per 👍: the period's spend
divided by its 👍s, so spend can be weighed against usefulness.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from bot.ledger.driver import Driver, now_utc, time_scope
from bot.ledger.types import LedgerError, from_nanos

VoteValue = Literal[1, -1]


@dataclass(frozen=True, slots=True)
class ModelSetFeedback:
    """Votes on the runs that used exactly these models."""

    models: tuple[str, ...]
    up: int
    down: int

    @property
    def satisfaction_pct(self) -> Decimal | None:
        return _pct(self.up, self.down)


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    """A period's votes: totals, per model set, and what each 👍 cost."""

    up: int
    down: int
    voted_runs: int
    spent_usd: Decimal
    by_model_set: tuple[ModelSetFeedback, ...]

    @property
    def satisfaction_pct(self) -> Decimal | None:
        return _pct(self.up, self.down)

    @property
    def cost_per_up_usd(self) -> Decimal | None:
        return self.spent_usd / self.up if self.up else None


def _pct(up: int, down: int) -> Decimal | None:
    return Decimal(100 * up) / (up + down) if up + down else None


class Interactions:
    """The `stop_requests` and `votes` tables."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def request_stop(self, run_id: str, user_id: str, *, now: datetime | None = None) -> bool:
        """Ask for `run_id` to stop; True for the first request, False if one was made."""
        async with self._db.write() as c:
            if not await c.fetch("SELECT 1 FROM runs WHERE id = ?", run_id):
                raise LedgerError(f"no run {run_id!r} in the ledger")
            changed = await c.execute(
                "INSERT INTO stop_requests (run_id, user_id, requested_at) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id) DO NOTHING",
                run_id,
                user_id,
                self._db.to_db_time(now_utc(now)),
            )
        return changed == 1

    async def stop_requests_for(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Which of `run_ids` someone asked to stop, and who (run id → user id)."""
        if not run_ids:
            return {}
        marks = ", ".join("?" for _ in run_ids)
        async with self._db.read() as c:
            rows = await c.fetch(
                f"SELECT run_id, user_id FROM stop_requests WHERE run_id IN ({marks})", *run_ids
            )
        return {str(run_id): str(user_id) for run_id, user_id in rows}

    async def vote(
        self, run_id: str, user_id: str, vote: VoteValue, *, now: datetime | None = None
    ) -> VoteValue | None:
        """Record `user_id`'s vote on `run_id` (replacing theirs); returns their previous one."""
        async with self._db.write(lock_key=f"orchestrate.vote.{run_id}") as c:
            if not await c.fetch("SELECT 1 FROM runs WHERE id = ?", run_id):
                raise LedgerError(f"no run {run_id!r} in the ledger")
            before = await c.fetch(
                "SELECT vote FROM votes WHERE run_id = ? AND user_id = ?", run_id, user_id
            )
            await c.execute(
                "INSERT INTO votes (run_id, user_id, vote, voted_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (run_id, user_id) DO UPDATE SET vote = excluded.vote,"
                " voted_at = excluded.voted_at,"
                " reason = CASE WHEN excluded.vote = votes.vote THEN votes.reason END",
                run_id,
                user_id,
                vote,
                self._db.to_db_time(now_utc(now)),
            )
        return _vote(int(before[0][0])) if before else None

    async def set_vote_reason(self, run_id: str, user_id: str, reason: str) -> bool:
        """Attach "what was wrong" to a person's 👎; False if they have no 👎 on the run."""
        async with self._db.write() as c:
            changed = await c.execute(
                "UPDATE votes SET reason = ? WHERE run_id = ? AND user_id = ? AND vote = -1",
                reason,
                run_id,
                user_id,
            )
        return changed == 1

    async def feedback(self, team_id: str, *, since: datetime, until: datetime) -> FeedbackReport:
        window = (since, until)
        runs_where, args = time_scope(self._db, team_id, None, col="started_at", window=window)
        voted_where = "r.team_id = ? AND r.started_at >= ? AND r.started_at < ?"
        async with self._db.read() as c:
            votes = await c.fetch(
                "SELECT v.run_id, v.vote FROM votes v JOIN runs r ON r.id = v.run_id"
                f" WHERE {voted_where}",
                *args,
            )
            models = await c.fetch(
                "SELECT DISTINCT c.run_id, c.model FROM calls c"
                " JOIN votes v ON v.run_id = c.run_id JOIN runs r ON r.id = c.run_id"
                f" WHERE {voted_where}",
                *args,
            )
            spent = await c.fetch(f"SELECT SUM(cost_nanos) FROM runs WHERE {runs_where}", *args)
        return _report(votes, models, from_nanos(int(spent[0][0] or 0)))


def _vote(value: int) -> VoteValue:
    if value == 1:
        return 1
    if value == -1:
        return -1
    raise LedgerError(f"a vote is +1 or -1, not {value}")


def _report(
    votes: Sequence[tuple[object, ...]], models: Sequence[tuple[object, ...]], spent: Decimal
) -> FeedbackReport:
    used: dict[str, set[str]] = defaultdict(set)
    for run_id, model in models:
        used[str(run_id)].add(str(model))
    tally: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    up = down = 0
    for run_id, vote in votes:
        side = 0 if int(str(vote)) > 0 else 1
        tally[tuple(sorted(used[str(run_id)]))][side] += 1
        up, down = (up + 1, down) if side == 0 else (up, down + 1)
    sets = tuple(
        ModelSetFeedback(models_used, counts[0], counts[1])
        for models_used, counts in sorted(tally.items(), key=lambda kv: -sum(kv[1]))
    )
    return FeedbackReport(
        up=up,
        down=down,
        voted_runs=len({str(run_id) for run_id, _ in votes}),
        spent_usd=spent,
        by_model_set=sets,
    )
