"""An eval's spend and its headline: `orchestrate-bot eval` writes here, App Home reads.

Each arm of an eval question (the orchestrate run, the all-Opus baseline, the judge's two
calls) is a run of kind 'eval' in `runs`, with its calls written by `RunBook.record_call` like
any run's, so `orchestrate-bot costs` counts what evals spent (under the roles `baseline`
and `judge` besides the run's own) and a team's Slack figures do not. Eval runs belong to no
workspace (`team_id` ''). `record` keeps a finished eval's headline (wins, ties, losses and
what each arm cost); `latest` is the one admins see in App Home.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.ledger.driver import Driver, now_utc
from bot.ledger.types import from_nanos, to_nanos

EVAL_TEAM, EVAL_CHANNEL, EVAL_USER = "", "eval", "eval"


@dataclass(frozen=True, slots=True)
class EvalHeadline:
    """One finished eval: the verdicts of its questions and what each arm cost in all."""

    finished_at: datetime
    live: bool
    questions: int
    wins: int
    ties: int
    losses: int
    orchestrate_usd: Decimal
    baseline_usd: Decimal
    judge_usd: Decimal
    judge_model: str

    @property
    def cost_ratio(self) -> Decimal | None:
        """Orchestrate's cost as a fraction of the all-Opus baseline's (None without one)."""
        return self.orchestrate_usd / self.baseline_usd if self.baseline_usd else None


class Evals:
    """The `evals` table and the eval runs in `runs`."""

    def __init__(self, db: Driver, *, store_questions: bool) -> None:
        self._db = db
        self._store_questions = store_questions

    async def start_run(self, question: str, *, now: datetime | None = None) -> str:
        """Insert a run of kind 'eval' (no budget: the operator confirmed the estimate)."""
        run_id = str(uuid.uuid4())
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO runs (id, team_id, channel_id, user_id, question_chars, question,"
                " status, started_at, kind) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, 'eval')",
                run_id, EVAL_TEAM, EVAL_CHANNEL, EVAL_USER, len(question),
                question if self._store_questions else None,
                self._db.to_db_time(now_utc(now)),
            )  # fmt: skip
        return run_id

    async def record(self, headline: EvalHeadline) -> None:
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO evals (id, finished_at, live, questions, wins, ties, losses,"
                " orchestrate_nanos, baseline_nanos, judge_nanos, judge_model)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                str(uuid.uuid4()), self._db.to_db_time(headline.finished_at),
                int(headline.live), headline.questions, headline.wins, headline.ties,
                headline.losses, to_nanos(headline.orchestrate_usd),
                to_nanos(headline.baseline_usd), to_nanos(headline.judge_usd),
                headline.judge_model,
            )  # fmt: skip

    async def latest(self) -> EvalHeadline | None:
        async with self._db.read() as c:
            rows = await c.fetch(
                "SELECT finished_at, live, questions, wins, ties, losses, orchestrate_nanos,"
                " baseline_nanos, judge_nanos, judge_model FROM evals"
                " ORDER BY finished_at DESC LIMIT 1"
            )
        if not rows:
            return None
        at, live, questions, wins, ties, losses, orchestrate, baseline, judge, model = rows[0]
        return EvalHeadline(
            finished_at=self._db.from_db_time(at), live=bool(live), questions=int(questions),
            wins=int(wins), ties=int(ties), losses=int(losses),
            orchestrate_usd=from_nanos(int(orchestrate)), baseline_usd=from_nanos(int(baseline)),
            judge_usd=from_nanos(int(judge)), judge_model=str(model),
        )  # fmt: skip
