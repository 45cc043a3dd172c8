"""One conformance suite for every ledger backend (SQLite and PostgreSQL, via `ledger_url`).

Shows what the ledger promises: figures survive a restart and a SIGKILL mid-run,
reports equal hand-computed sums, a user's view never includes anyone else, budgets refuse
before a run starts and hold across two racing OS processes, and the 80% alert fires once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.core.usage import CallRecord, Role, TokenUsage
from bot.ledger import BudgetRefusal, Ledger, LedgerError, Reservation, open_ledger
from bot.ledger.export import CSV_COLUMNS
from bot.ledger.migrations import POSTGRES, SQLITE

RawSql = Callable[[str, str], Awaitable[None]]
ROOT = Path(__file__).resolve().parents[2]
OPUS, SONNET, HAIKU = "claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"
NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)
DAY = (datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC))


def call(model: str, role: Role, usage: TokenUsage, cost: str | None) -> CallRecord:
    return CallRecord(
        role=role,
        model=model,
        usage=usage,
        cost_usd=None if cost is None else Decimal(cost),
        latency_s=1.25,
        outcome="ok",
        request_id=f"req_{model}_{role}",
        component_index=0 if role == "example" else None,
    )


# Hand-priced at list rates; "as Opus" figures are the same buckets at Opus rates.
PLAN = call(OPUS, "plan", TokenUsage(input_tokens=1_000, output_tokens=2_000), "0.044")
EXAMPLE = call(HAIKU, "example", TokenUsage(input_tokens=1_500, output_tokens=1_000), "0.00065")
REVIEW = call(SONNET, "review", TokenUsage(input_tokens=4_000, output_tokens=600), "0.014")
MYSTERY = call("claude-mystery-9", "example", TokenUsage(input_tokens=1_000), None)


async def run_with(
    ledger: Ledger,
    calls: list[CallRecord],
    *,
    team: str = "T1",
    user: str = "U1",
    channel: str = "C1",
    at: datetime = NOW,
    finish: bool = True,
) -> str:
    run_id = await ledger.runs.start_run(
        team_id=team, channel_id=channel, user_id=user, question="How do we ship?", now=at
    )
    for record in calls:
        await ledger.runs.record_call(run_id, record, now=at)
    if finish:
        await ledger.runs.finish_run(run_id, "finished", elapsed_s=12.5, now=at)
    return run_id


async def seed_two_runs_and_noise(ledger: Ledger) -> None:
    await run_with(ledger, [PLAN, EXAMPLE, EXAMPLE, REVIEW], user="U1", channel="C1")
    await run_with(ledger, [PLAN, EXAMPLE], user="U2", channel="C2")
    await run_with(ledger, [PLAN], team="T2")  # another workspace
    await run_with(ledger, [PLAN], at=NOW - timedelta(days=3))  # before the window
    refused = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U3", question="q",
        worst_case_usd=Decimal("0.5"), user_budget=Decimal(0), workspace_budget=None, now=NOW,
    )  # fmt: skip
    assert isinstance(refused, BudgetRefusal)


async def test_opening_applies_migrations_once(ledger_url: str) -> None:
    latest = SQLITE[-1].version
    assert latest == POSTGRES[-1].version == 13
    async with open_ledger(ledger_url) as first:
        assert await first.schema_version() == latest
    async with open_ledger(ledger_url) as again:
        assert await again.schema_version() == latest


async def test_a_database_from_a_newer_build_is_refused(ledger_url: str, raw_sql: RawSql) -> None:
    async with open_ledger(ledger_url):
        pass
    await raw_sql(
        ledger_url,
        "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', 'x')",
    )
    with pytest.raises(LedgerError, match="newer than this build"):
        async with open_ledger(ledger_url):
            pass


async def test_summary_equals_hand_computed_figures(ledger: Ledger) -> None:
    await seed_two_runs_and_noise(ledger)

    report = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1])

    assert (report.runs, report.refused_runs, report.calls) == (2, 1, 6)
    # 0.044×2 + 0.00065×3 + 0.014
    assert report.total_usd == Decimal("0.10395")
    assert report.average_per_run_usd == Decimal("0.051975")
    assert report.unpriced_calls == 0
    assert [(m.model, m.calls, m.cost_usd) for m in report.by_model] == [
        (OPUS, 2, Decimal("0.088")),
        (SONNET, 1, Decimal("0.014")),
        (HAIKU, 3, Decimal("0.00195")),
    ]
    assert report.by_model[2].usage == TokenUsage(input_tokens=4_500, output_tokens=3_000)
    assert [(r.role, r.calls, r.cost_usd) for r in report.by_role] == [
        ("plan", 2, Decimal("0.088")),
        ("review", 1, Decimal("0.014")),
        ("example", 3, Decimal("0.00195")),
    ]
    assert [(s.id, s.runs, s.cost_usd) for s in report.top_users] == [
        ("U1", 1, Decimal("0.0593")),
        ("U2", 1, Decimal("0.04465")),
    ]
    assert [s.id for s in report.top_channels] == ["C1", "C2"]
    # As Opus: plans 0.044×2, examples (1,500×4 + 1,000×20)/1e6 × 3, review (4,000×4 + 600×20)/1e6
    assert report.all_strategy_model_usd == Decimal("0.194")
    assert report.saving_pct is not None
    assert round(report.saving_pct, 3) == Decimal("46.418")


async def test_a_period_cut_mid_day_counts_exactly_the_runs_started_inside(
    ledger: Ledger,
) -> None:
    day1 = datetime(2026, 11, 10, tzinfo=UTC)
    await run_with(ledger, [REVIEW], at=day1 + timedelta(hours=10))  # before the cut
    await run_with(ledger, [PLAN], at=day1 + timedelta(hours=13))  # head partial day
    await run_with(ledger, [EXAMPLE, EXAMPLE], at=day1 + timedelta(days=1, hours=12))  # whole day
    await run_with(ledger, [PLAN, REVIEW], at=day1 + timedelta(days=2, hours=8))  # tail
    await run_with(ledger, [PLAN], at=day1 + timedelta(days=2, hours=9))  # at the end: out

    report = await ledger.reports.summary(
        "T1", since=day1 + timedelta(hours=12), until=day1 + timedelta(days=2, hours=9)
    )

    assert (report.runs, report.calls) == (3, 5)
    # 0.044 + 2 × 0.00065 + 0.044 + 0.014
    assert report.total_usd == Decimal("0.1033")
    assert [(r.role, r.calls) for r in report.by_role] == [
        ("plan", 2),
        ("review", 1),
        ("example", 2),
    ]


async def test_upgrading_from_version_1_backfills_the_daily_totals(
    ledger_url: str, raw_sql: RawSql
) -> None:
    async with open_ledger(ledger_url) as ledger:
        await seed_two_runs_and_noise(ledger)
        await run_with(ledger, [PLAN, MYSTERY], user="U2", at=NOW - timedelta(hours=3))
        report = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1])
    for statement in (
        # Back to version 1: undo version 13 (call holds), 12 (eval kinds, headlines),
        # 11 (run events), 10 (strategies), 8 (settings, notices, runs.models), then 7 to 2.
        "DROP TABLE call_holds",
        "DROP TABLE evals",
        "ALTER TABLE runs DROP COLUMN kind",
        "DROP TABLE run_events",
        "DROP TABLE run_strategies",
        "DROP TABLE team_settings",
        "DROP TABLE settings_changes",
        "DROP TABLE notices",
        "DROP INDEX runs_team_models",
        "ALTER TABLE runs DROP COLUMN models",
        "DROP TABLE call_days",
        "DROP INDEX calls_time",
        "DROP TABLE votes",
        "DROP TABLE stop_requests",
        "DROP TABLE instances",
        "DROP INDEX runs_owner",
        "ALTER TABLE runs DROP COLUMN owner_id",
        "DROP INDEX calls_key",
        "ALTER TABLE calls DROP COLUMN call_key",
        "ALTER TABLE calls DROP COLUMN estimated",
        "DROP TABLE claims",
        "DROP INDEX runs_parent",
        "ALTER TABLE runs DROP COLUMN parent_run_id",
        "DELETE FROM schema_version WHERE version >= 2",
    ):
        await raw_sql(ledger_url, statement)

    async with open_ledger(ledger_url) as upgraded:
        assert await upgraded.schema_version() == SQLITE[-1].version
        assert await upgraded.reports.summary("T1", since=DAY[0], until=DAY[1]) == report
    assert report.unpriced_calls == 1


async def test_a_call_written_twice_with_its_key_is_recorded_once(ledger: Ledger) -> None:
    run_id = await run_with(ledger, [], finish=False)

    first = await ledger.runs.record_call(run_id, PLAN, key="call-1", now=NOW)
    again = await ledger.runs.record_call(run_id, PLAN, key="call-1", now=NOW)
    other = await ledger.runs.record_call(run_id, PLAN, key="call-2", now=NOW)

    assert (first, again, other) == (True, False, True)
    run = await ledger.runs.get_run(run_id)
    assert run is not None and (run.calls, run.cost_usd) == (2, Decimal("0.088"))
    report = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1])
    assert (report.calls, report.total_usd) == (2, Decimal("0.088"))


async def test_top_lists_stop_at_five(ledger: Ledger) -> None:
    for i in range(7):
        await run_with(ledger, [PLAN] * (i + 1), user=f"U{i}", channel=f"C{i}")
    report = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1])
    assert [s.id for s in report.top_users] == ["U6", "U5", "U4", "U3", "U2"]
    assert [s.id for s in report.top_channels] == ["C6", "C5", "C4", "C3", "C2"]


async def test_user_view_never_includes_other_users(ledger: Ledger) -> None:
    await seed_two_runs_and_noise(ledger)

    mine = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1], user_id="U2")

    assert (mine.runs, mine.calls, mine.total_usd) == (1, 2, Decimal("0.04465"))
    assert [s.id for s in mine.top_users] == ["U2"]
    assert [s.id for s in mine.top_channels] == ["C2"]
    assert {m.model for m in mine.by_model} == {OPUS, HAIKU}
    days = await ledger.reports.daily("T1", days=1, user_id="U2", today=NOW.date())
    assert [(d.runs, d.cost_usd) for d in days] == [(1, Decimal("0.04465"))]


async def test_unpriced_calls_are_counted_never_costed_as_zero(ledger: Ledger) -> None:
    await run_with(ledger, [PLAN, MYSTERY])

    report = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1])

    assert report.total_usd == Decimal("0.044")
    assert report.unpriced_calls == 1
    mystery = next(m for m in report.by_model if m.model == "claude-mystery-9")
    assert mystery.cost_usd is None
    # The comparison covers the same (priced) calls only.
    assert report.all_strategy_model_usd == Decimal("0.044")


async def test_daily_is_zero_filled_oldest_first(ledger: Ledger) -> None:
    await run_with(ledger, [PLAN])
    await run_with(ledger, [REVIEW], at=NOW - timedelta(days=2))
    await run_with(ledger, [REVIEW], at=NOW - timedelta(days=9))  # outside

    days = await ledger.reports.daily("T1", days=4, today=NOW.date())

    assert [(d.day, d.runs, d.cost_usd) for d in days] == [
        (date(2026, 11, 15), 0, Decimal(0)),
        (date(2026, 11, 16), 1, Decimal("0.014")),
        (date(2026, 11, 17), 0, Decimal(0)),
        (date(2026, 11, 18), 1, Decimal("0.044")),
    ]


async def test_a_restart_keeps_every_figure(ledger_url: str) -> None:
    async with open_ledger(ledger_url) as before:
        await seed_two_runs_and_noise(before)
        open_run = await run_with(before, [PLAN], finish=False)
        await before.runs.set_thread(open_run, "C1", "1700000000.000100")
        report = await before.reports.summary("T1", since=DAY[0], until=DAY[1])
        days = await before.reports.daily("T1", days=7, today=NOW.date())
        run = await before.runs.get_run(open_run)
        csv_before = io.StringIO()
        await before.export.calls_csv(None, NOW - timedelta(days=30), csv_before)

    async with open_ledger(ledger_url) as after:
        assert await after.reports.summary("T1", since=DAY[0], until=DAY[1]) == report
        assert await after.reports.daily("T1", days=7, today=NOW.date()) == days
        assert await after.runs.get_run(open_run) == run
        csv_after = io.StringIO()
        await after.export.calls_csv(None, NOW - timedelta(days=30), csv_after)
    assert csv_after.getvalue() == csv_before.getvalue()
    assert run is not None and (run.thread_channel, run.thread_ts) == ("C1", "1700000000.000100")


@pytest.fixture
def worker_env() -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    yield env


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.ledger_worker", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def release(workers: list[subprocess.Popen[str]]) -> None:
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("GO\n")
        w.stdin.flush()


def reap(workers: list[subprocess.Popen[str]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.kill()
        w.wait()
        for pipe in (w.stdin, w.stdout):
            if pipe is not None:
                pipe.close()


async def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=60)
    assert line, f"worker exited early with {proc.wait()}"
    return line.strip()


async def test_sigkill_mid_run_loses_no_recorded_call(
    ledger_url: str, worker_env: dict[str, str]
) -> None:
    proc = start_worker(worker_env, "crash", ledger_url)
    try:
        line = await read_line(proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        reap([proc])
    run_id = line.removeprefix("RECORDED ")

    async with open_ledger(ledger_url) as ledger:
        run = await ledger.runs.get_run(run_id)
        assert run is not None and (run.status, run.calls) == ("running", 2)
        assert run.cost_usd == Decimal("0.088")
        # The dead process beat once; its process id is gone from this host, so its runs are
        # closed at once rather than after the heartbeat TTL.
        assert await reap_at(ledger, NOW) == []  # it never had a thread to tell
        run = await ledger.runs.get_run(run_id)
        assert run is not None and run.status == "interrupted"
        interrupted = await ledger.runs.get_run(run_id)
        assert interrupted is not None and interrupted.status == "interrupted"
        out = io.StringIO()
        assert await ledger.export.calls_csv("T1", datetime.now(UTC) - timedelta(hours=1), out) == 2


TTL = timedelta(seconds=45)


async def reap_at(ledger: Ledger, now: datetime) -> list[tuple[str, str]]:
    return await ledger.instances.reap(ttl=TTL, ownerless_before=now - timedelta(hours=1), now=now)


async def held_at(ledger: Ledger, now: datetime) -> Decimal:
    probe = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U-probe", question="q",
        worst_case_usd=Decimal("0.01"), user_budget=None, workspace_budget=Decimal(0), now=now,
    )  # fmt: skip
    assert isinstance(probe, BudgetRefusal)
    return probe.reserved_usd


async def test_a_silent_instances_runs_are_interrupted_after_the_ttl_and_release_budget(
    ledger_url: str,
) -> None:
    async with open_ledger(ledger_url) as dies, open_ledger(ledger_url) as lives:
        await dies.instances.claim(ttl=TTL, now=NOW)
        await lives.instances.claim(ttl=TTL, now=NOW)
        held = await dies.runs.reserve_run(
            team_id="T1", channel_id="C1", user_id="U1", question="q",
            worst_case_usd=Decimal("0.30"), user_budget=None, workspace_budget=Decimal(5), now=NOW,
        )  # fmt: skip
        assert isinstance(held, Reservation)
        await dies.runs.set_thread(held.run_id, "C1", "1700000000.000100")

        await lives.instances.beat(now=NOW + TTL)
        assert await reap_at(lives, NOW + TTL - timedelta(seconds=1)) == []  # still alive
        assert await held_at(lives, NOW) == Decimal("0.30")

        assert await reap_at(lives, NOW + TTL + timedelta(seconds=1)) == [
            ("C1", "1700000000.000100")
        ]
        assert await reap_at(lives, NOW + TTL + timedelta(seconds=2)) == []  # closed once
        run = await lives.runs.get_run(held.run_id)
        assert run is not None and run.status == "interrupted"
        assert await held_at(lives, NOW) == 0


async def test_live_instances_are_those_that_beat_within_the_ttl(ledger_url: str) -> None:
    async with open_ledger(ledger_url) as first, open_ledger(ledger_url) as second:
        await first.instances.claim(ttl=TTL, now=NOW)
        assert await first.instances.live(ttl=TTL, now=NOW) == 1
        await second.instances.claim(ttl=TTL, now=NOW + timedelta(seconds=5))
        assert await first.instances.live(ttl=TTL, now=NOW + timedelta(seconds=5)) == 2
        # The first falls silent: once its beat is older than the TTL it no longer counts.
        later = NOW + TTL + timedelta(seconds=1)
        assert await second.instances.live(ttl=TTL, now=later) == 1
        await second.instances.leave()
        assert await first.instances.live(ttl=TTL, now=NOW) == 1  # never less than itself


async def test_a_starting_instance_never_touches_runs_whose_owner_beats(ledger_url: str) -> None:
    async with open_ledger(ledger_url) as first, open_ledger(ledger_url) as second:
        await first.instances.claim(ttl=TTL, now=NOW)
        mine = await run_with(first, [PLAN], finish=False)
        await second.instances.claim(ttl=TTL, now=NOW + timedelta(seconds=1))

        assert await reap_at(second, NOW + timedelta(seconds=1)) == []
        # Nor does an instance reap its own runs, however late its own beat.
        assert await reap_at(first, NOW + timedelta(hours=1)) == []
        run = await first.runs.get_run(mine)
        assert run is not None and run.status == "running"


async def test_instances_take_the_lowest_free_slot_and_a_beat_after_being_declared_dead_says_so(
    ledger_url: str,
) -> None:
    async with open_ledger(ledger_url) as first, open_ledger(ledger_url) as second:
        assert await first.instances.claim(ttl=TTL, now=NOW) == "instance-0"
        assert await second.instances.claim(ttl=TTL, now=NOW) == "instance-1"
        assert await first.instances.beat(now=NOW + timedelta(seconds=1))
        # The second falls silent past the TTL: the first's reap forgets it ...
        await reap_at(first, NOW + TTL + timedelta(seconds=2))
        assert await first.instances.live_ids(ttl=TTL, now=NOW + TTL) == {"instance-0"}
        # ... and its next beat tells it so: it must act for its runs no more.
        assert not await second.instances.beat(now=NOW + TTL + timedelta(seconds=3))
        assert await first.instances.beat(now=NOW + TTL + timedelta(seconds=3))
    async with open_ledger(ledger_url) as third:  # the freed slot is taken again
        assert await third.instances.claim(ttl=TTL, now=NOW + TTL + timedelta(seconds=3)) == (
            "instance-1"
        )


async def test_runs_without_an_owner_are_reaped_only_once_older_than_any_run_lives(
    ledger: Ledger, raw_sql: RawSql, ledger_url: str
) -> None:
    old = await run_with(ledger, [PLAN], at=NOW - timedelta(hours=2), finish=False)
    fresh = await run_with(ledger, [PLAN], at=NOW, finish=False)
    await raw_sql(ledger_url, "UPDATE runs SET owner_id = NULL")  # as written before owners

    await reap_at(ledger, NOW)

    statuses = [await ledger.runs.get_run(r) for r in (old, fresh)]
    assert [s.status if s else None for s in statuses] == ["interrupted", "running"]


async def test_budget_refuses_when_the_worst_case_exceeds_what_is_left(ledger: Ledger) -> None:
    await run_with(ledger, [PLAN, REVIEW])  # U1 spent 0.058 today
    await run_with(ledger, [PLAN, PLAN], at=NOW - timedelta(days=1))  # yesterday: not today's

    def attempt(worst: str, user: str = "U1") -> Awaitable[Reservation | BudgetRefusal]:
        return ledger.runs.reserve_run(
            team_id="T1", channel_id="C1", user_id=user, question="q",
            worst_case_usd=Decimal(worst), user_budget=Decimal("0.10"),
            workspace_budget=Decimal("1.00"), now=NOW,
        )  # fmt: skip

    refused = await attempt("0.043")
    assert isinstance(refused, BudgetRefusal)
    assert (refused.budget, refused.limit_usd, refused.spent_usd) == (
        "user_daily", Decimal("0.10"), Decimal("0.058"),
    )  # fmt: skip
    assert (refused.reserved_usd, refused.left_usd) == (Decimal(0), Decimal("0.042"))
    assert refused.worst_case_usd == Decimal("0.043")

    held = await attempt("0.042")  # exactly what is left
    assert isinstance(held, Reservation)

    # The running run holds its whole reservation, so nothing is left today.
    again = await attempt("0.001")
    assert isinstance(again, BudgetRefusal)
    assert (again.spent_usd, again.reserved_usd) == (Decimal("0.058"), Decimal("0.042"))

    # Other users are bound by their own day and the workspace month only.
    assert isinstance(await attempt("0.09", user="U2"), Reservation)


async def test_workspace_budget_counts_the_calendar_month(ledger: Ledger) -> None:
    await run_with(ledger, [PLAN] * 10, user="U1")  # 0.44 this month
    await run_with(ledger, [PLAN] * 10, at=datetime(2026, 10, 31, 23, tzinfo=UTC))  # October

    refusal = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U2", question="q",
        worst_case_usd=Decimal("0.07"), user_budget=None,
        workspace_budget=Decimal("0.50"), now=NOW,
    )  # fmt: skip

    assert isinstance(refusal, BudgetRefusal)
    assert (refusal.budget, refusal.spent_usd) == ("workspace_monthly", Decimal("0.44"))
    assert await ledger.budgets.workspace_month_spent("T1", NOW) == Decimal("0.44")


async def test_a_running_run_counts_the_larger_of_reservation_and_cost(ledger: Ledger) -> None:
    held = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U1", question="q",
        worst_case_usd=Decimal("0.05"), user_budget=None, workspace_budget=Decimal(1), now=NOW,
    )  # fmt: skip
    assert isinstance(held, Reservation)
    for _ in range(3):
        await ledger.runs.record_call(held.run_id, PLAN, now=NOW)  # 0.132 > its 0.05 reservation

    refusal = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U1", question="q",
        worst_case_usd=Decimal("0.9"), user_budget=None, workspace_budget=Decimal(1), now=NOW,
    )  # fmt: skip

    assert isinstance(refusal, BudgetRefusal)
    assert (refusal.spent_usd, refusal.reserved_usd) == (Decimal("0.132"), Decimal(0))


async def test_a_refused_run_is_recorded_with_no_calls(ledger: Ledger) -> None:
    refusal = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U1", question="q",
        worst_case_usd=Decimal("0.2"), user_budget=Decimal("0.1"), workspace_budget=None, now=NOW,
    )  # fmt: skip
    assert isinstance(refusal, BudgetRefusal)
    run = await ledger.runs.get_run(refusal.run_id)
    assert run is not None
    assert (run.status, run.calls, run.cost_usd) == ("refused", 0, Decimal(0))
    assert run.error == "refused: user_daily budget"
    report = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1])
    assert (report.runs, report.refused_runs, report.total_usd) == (0, 1, Decimal(0))


async def test_two_processes_racing_never_exceed_the_budget(
    ledger_url: str, worker_env: dict[str, str]
) -> None:
    async with open_ledger(ledger_url):
        pass  # migrate first, so the race is over reservations only
    # Budget 1.00 at 0.07 a run admits exactly 14 runs; 2 × 20 attempts ask for 40.
    workers = [
        start_worker(worker_env, "reserve", ledger_url, "20", "5", "0.07", "1.00") for _ in range(2)
    ]
    try:
        assert [await read_line(w) for w in workers] == ["READY", "READY"]
        release(workers)
        accepted = [int((await read_line(w)).removeprefix("ACCEPTED ")) for w in workers]
    finally:
        reap(workers)

    assert sum(accepted) == 14
    async with open_ledger(ledger_url) as ledger:
        report = await ledger.reports.summary("T-race", since=DAY[0] - timedelta(days=400),
                                      until=datetime.now(UTC) + timedelta(days=1))  # fmt: skip
        # The 14 admitted never posted a thread or made a call: reports do not count them
        # as runs (a run is counted once it posts); the 26 refusals are all there.
        assert (report.runs, report.refused_runs) == (0, 26)


async def test_questions_are_dropped_when_not_to_be_stored(ledger_url: str) -> None:
    async with open_ledger(ledger_url, store_questions=False) as ledger:
        run_id = await ledger.runs.start_run(
            team_id="T1", channel_id="C1", user_id="U1", question="secret plans"
        )
        run = await ledger.runs.get_run(run_id)
    assert run is not None and (run.question, run.question_chars) == (None, 12)


async def test_a_stored_question_is_kept(ledger: Ledger) -> None:
    run_id = await ledger.runs.start_run(team_id="T1", channel_id="C1", user_id="U1", question="q?")
    run = await ledger.runs.get_run(run_id)
    assert run is not None and run.question == "q?"


async def test_recording_a_call_for_an_unknown_run_fails_loudly(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="no run"):
        await ledger.runs.record_call("no-such-run", PLAN)
    with pytest.raises(LedgerError, match="no run"):
        await ledger.runs.finish_run("no-such-run", "finished", elapsed_s=1.0)


async def test_csv_export_lists_each_call_with_exact_cost(ledger: Ledger) -> None:
    await run_with(ledger, [PLAN, MYSTERY])
    await run_with(ledger, [REVIEW], team="T2")
    out = io.StringIO()

    rows = await ledger.export.calls_csv("T1", NOW - timedelta(days=1), out)

    lines = out.getvalue().splitlines()
    assert rows == 2 and len(lines) == 3
    assert lines[0] == ",".join(CSV_COLUMNS)
    plan_cells = dict(zip(CSV_COLUMNS, lines[1].split(","), strict=True))
    assert plan_cells["cost_usd"] == "0.044000000"
    assert (plan_cells["model"], plan_cells["input_tokens"]) == (OPUS, "1000")
    assert plan_cells["created_at"].startswith("2026-11-18T15:30:00")
    mystery_cells = dict(zip(CSV_COLUMNS, lines[2].split(","), strict=True))
    assert mystery_cells["cost_usd"] == ""  # unpriced, not $0


async def test_a_write_cancelled_while_it_begins_leaves_the_ledger_usable(ledger: Ledger) -> None:
    # The SQLite driver hands BEGIN to a worker thread; a cancellation at that moment must
    # not leave a transaction open behind it (every later write would then fail).
    for pause in range(4):
        task = asyncio.create_task(
            ledger.runs.start_run(team_id="T1", channel_id="C1", user_id="U1", question="q")
        )
        for _ in range(pause):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    run_id = await ledger.runs.start_run(team_id="T1", channel_id="C1", user_id="U1", question="q")
    await ledger.runs.finish_run(run_id, "finished", elapsed_s=1.0)
    run = await ledger.runs.get_run(run_id)
    assert run is not None and run.status == "finished"


async def test_follow_ups_are_runs_of_their_askers_totalled_under_the_run_they_follow(
    ledger: Ledger,
) -> None:
    parent = await run_with(ledger, [PLAN, EXAMPLE, REVIEW])
    asked = []
    for user, calls in (("U2", [REVIEW]), ("U3", [EXAMPLE, MYSTERY])):
        reserved = await ledger.runs.reserve_run(
            team_id="T1", channel_id="C1", user_id=user, question="what about auth?",
            worst_case_usd=Decimal("0.05"), user_budget=None, workspace_budget=None,
            parent_run_id=parent, now=NOW,
        )  # fmt: skip
        assert isinstance(reserved, Reservation)
        for record in calls:
            await ledger.runs.record_call(reserved.run_id, record, now=NOW)
        await ledger.runs.finish_run(reserved.run_id, "finished", elapsed_s=1.0, now=NOW)
        asked.append(reserved.run_id)
    refused = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U4", question="and this?",
        worst_case_usd=Decimal("5"), user_budget=Decimal("1"), workspace_budget=None,
        parent_run_id=parent, now=NOW,
    )  # fmt: skip
    assert isinstance(refused, BudgetRefusal)

    totals = await ledger.runs.followups(parent)
    assert (totals.count, totals.cost_usd, totals.unpriced_calls) == (
        2,
        Decimal("0.014") + Decimal("0.00065"),
        1,
    )
    child = await ledger.runs.get_run(asked[1])
    assert child is not None and (child.parent_run_id, child.user_id) == (parent, "U3")
    report = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1], user_id="U2")
    assert report.total_usd == Decimal("0.014")  # the asker's own usage includes it
    assert (report.runs, report.followups) == (0, 1)
    team = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1])
    assert (team.runs, team.followups, team.refused_runs) == (1, 2, 1)
    assert (await ledger.runs.followups(asked[0])).count == 0


async def test_an_estimated_call_is_kept_estimated_in_reports_and_the_export(
    ledger: Ledger,
) -> None:
    cut = replace(
        call(HAIKU, "example", TokenUsage(1_500, 400, estimated=True), "0.00035"),
        outcome="cancelled",
    )
    await run_with(ledger, [PLAN, EXAMPLE, cut])

    # Whole days are read from the daily totals, a part of a day from the calls themselves.
    whole = await ledger.reports.summary("T1", since=DAY[0], until=DAY[1])
    part = await ledger.reports.summary("T1", since=NOW - timedelta(hours=1), until=DAY[1])
    for report in (whole, part):
        usage = {m.model: m.usage for m in report.by_model}
        assert usage[HAIKU] == TokenUsage(3_000, 1_400, estimated=True)
        assert not usage[OPUS].estimated
    out = io.StringIO()
    await ledger.export.calls_csv("T1", NOW - timedelta(days=1), out)
    lines = out.getvalue().splitlines()[1:]
    rows = [dict(zip(CSV_COLUMNS, line.split(","), strict=True)) for line in lines]
    assert [r["estimated"] for r in rows] == ["0", "0", "1"]


async def test_text_a_database_cannot_store_is_cleaned_not_refused(ledger: Ledger) -> None:
    # A NUL (PostgreSQL's text refuses it) and a lone surrogate (no UTF-8 encoding exists, so
    # neither backend can bind it), as Slack's JSON can carry them ("\u0000", "\ud800").
    question = "How do we ship\x00 the \ud800 release?"
    run_id = await ledger.runs.start_run(
        team_id="T1", channel_id="C1", user_id="U1", question=question
    )
    await ledger.runs.finish_run(run_id, "failed", elapsed_s=1.0, error="cut \udfff\x00off")
    await ledger.interactions.vote(run_id, "U2", -1)
    reason = "wrong\x00 \ud83d answer"
    assert await ledger.interactions.set_vote_reason(run_id, "U2", reason) is True

    run = await ledger.runs.get_run(run_id)
    assert run is not None
    assert run.question == "How do we ship the \ufffd release?"
    assert run.error == "cut \ufffdoff"
    assert run.question_chars == len(question)


async def test_a_value_postgresql_refuses_is_not_quoted_in_the_error() -> None:
    # asyncpg's DataError quotes the argument it could not encode; a question there would
    # reach an ERROR traceback. (SQLite's errors never quote values.)
    from bot.ledger.postgres import PostgresDriver
    from tests.ledger.conftest import fresh_postgres_schema

    async with fresh_postgres_schema() as url:
        driver = PostgresDriver(url)
        await driver.open()
        try:
            with pytest.raises(LedgerError) as refused:
                async with driver.write() as c:
                    await c.execute("SELECT ?::integer", "How do we ship Quokkafjord?")
        finally:
            await driver.close()
    assert "query argument $1" in str(refused.value)
    assert "Quokkafjord" not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
