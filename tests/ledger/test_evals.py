"""An eval's spend is its own kind of run, and its headline is kept: on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.core.pricing import PriceTable
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import EvalHeadline, open_ledger


def call(role: str) -> CallRecord:
    usage = TokenUsage(input_tokens=1000, output_tokens=2000)
    cost = PriceTable.load().cost("claude-opus-5-5", usage)
    return CallRecord(role, "claude-opus-5-5", usage, cost, 1.0, "ok")  # type: ignore[arg-type]


def headline(at: datetime, wins: int) -> EvalHeadline:
    return EvalHeadline(
        finished_at=at, live=True, questions=20, wins=wins, ties=3, losses=20 - 3 - wins,
        orchestrate_usd=Decimal("0.48"), baseline_usd=Decimal("1.92"),
        judge_usd=Decimal("2.10"), judge_model="claude-opus-5-5",
    )  # fmt: skip


async def test_eval_runs_are_their_own_kind_and_count_in_the_operators_costs(
    ledger_url: str,
) -> None:
    async with open_ledger(ledger_url) as ledger:
        slack_run = await ledger.runs.start_run(
            team_id="T1", channel_id="C1", user_id="U1", question="q"
        )
        eval_run = await ledger.evals.start_run("q")
        for role in ("baseline", "judge", "judge"):
            assert await ledger.runs.record_call(eval_run, call(role))
        await ledger.runs.finish_run(eval_run, "finished", elapsed_s=3.0)
        async with ledger._db.read() as c:
            kinds = dict(await c.fetch("SELECT id, kind FROM runs"))
        assert kinds == {slack_run: "slack", eval_run: "eval"}
        since, until = datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(hours=1)
        everything = await ledger.reports.summary(None, since=since, until=until)
        roles = {r.role: r.calls for r in everything.by_role}
        assert roles == {"baseline": 1, "judge": 2}
        team = await ledger.reports.summary("T1", since=since, until=until)
        assert team.by_role == ()  # a workspace's figures do not include evals


async def test_the_latest_eval_headline_is_the_one_read_back(ledger_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with open_ledger(ledger_url) as ledger:
        assert await ledger.evals.latest() is None
        await ledger.evals.record(headline(now - timedelta(days=1), wins=5))
        await ledger.evals.record(headline(now, wins=12))
    async with open_ledger(ledger_url) as ledger:
        latest = await ledger.evals.latest()
    assert latest is not None
    assert (latest.wins, latest.ties, latest.losses) == (12, 3, 5)
    assert latest.finished_at == now and latest.live
    assert latest.orchestrate_usd == Decimal("0.48") and latest.cost_ratio == Decimal("0.25")
