"""Reservations that fit real runs, channel budgets, and holding each call's worst case, on
both backends: a run holds the 95th percentile of recent runs of the same models (its worst
case only without history), and each model call holds its worst case before it starts, refused
when that does not fit in what the budget has left, settled by its record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import BudgetRefusal, BudgetStop, CallHold, Ledger, Limits, Reservation

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)
MODELS = "claude-opus-5-5,claude-haiku-5-5,claude-sonnet-5-5"
WORST = Decimal("0.33")


def costing(dollars: str) -> CallRecord:
    return CallRecord(
        role="plan",
        model="claude-opus-5-5",
        usage=TokenUsage(input_tokens=10, output_tokens=10),
        cost_usd=Decimal(dollars),
        latency_s=1.0,
        outcome="ok",
    )


async def reserve(
    ledger: Ledger,
    *,
    user: str = "U1",
    channel: str = "C1",
    models: str = MODELS,
    user_budget: Decimal | None = Decimal(100),
    channel_budget: Decimal | None = None,
    at: datetime = NOW,
) -> Reservation | BudgetRefusal:
    return await ledger.runs.reserve_run(
        team_id="T1",
        channel_id=channel,
        user_id=user,
        question="q",
        worst_case_usd=WORST,
        user_budget=user_budget,
        workspace_budget=None,
        channel_budget=channel_budget,
        models=models,
        now=at,
    )


async def finished_run(ledger: Ledger, cost: str, *, models: str = MODELS, n: int = 0) -> None:
    at = NOW - timedelta(hours=1, minutes=n)
    admitted = await reserve(ledger, models=models, at=at, user=f"U{n % 7}")
    assert isinstance(admitted, Reservation)
    await ledger.runs.record_call(admitted.run_id, costing(cost), now=at)
    await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=1.0, now=at)


async def test_without_history_a_run_holds_its_worst_case(ledger: Ledger) -> None:
    for n in range(4):  # four runs are not yet a history
        await finished_run(ledger, "0.01", n=n)
    admitted = await reserve(ledger)
    assert isinstance(admitted, Reservation)
    assert admitted.reserved_usd == WORST


async def test_with_history_a_run_holds_the_95th_percentile_of_the_same_models(
    ledger: Ledger,
) -> None:
    for n in range(1, 21):
        await finished_run(ledger, f"0.{n:02d}", n=n)  # $0.01 … $0.20
    for n in range(5):
        await finished_run(ledger, "0.30", models="other-models", n=100 + n)
    admitted = await reserve(ledger)
    assert isinstance(admitted, Reservation)
    assert admitted.reserved_usd == Decimal("0.19")  # nearest rank: the 19th of 20
    run = await ledger.runs.get_run(admitted.run_id)
    assert run is not None and run.reserved_usd == Decimal("0.19")


async def test_a_channel_budget_refuses_runs_in_that_channel_only(ledger: Ledger) -> None:
    refused = await reserve(ledger, channel="C1", channel_budget=Decimal("0.30"))
    assert isinstance(refused, BudgetRefusal)
    assert refused.budget == "channel_monthly"
    assert refused.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    elsewhere = await reserve(ledger, channel="C2", channel_budget=None)
    assert isinstance(elsewhere, Reservation)


async def test_a_refusal_says_when_a_daily_budget_resets(ledger: Ledger) -> None:
    refused = await reserve(ledger, user_budget=Decimal("0.05"))
    assert isinstance(refused, BudgetRefusal)
    assert refused.budget == "user_daily" and refused.resets_at == datetime(
        2026, 11, 19, tzinfo=UTC
    )


async def test_a_call_holds_its_worst_case_until_its_record_settles_it(ledger: Ledger) -> None:
    for n in range(1, 6):
        await finished_run(ledger, "0.001", n=n)  # a history: runs hold $0.001
    limits = Limits(user_daily=Decimal("0.05"), workspace_monthly=None)
    first = await reserve(ledger, user="U9", user_budget=Decimal("0.05"))
    other = await reserve(ledger, user="U9", user_budget=Decimal("0.05"))
    assert isinstance(first, Reservation) and isinstance(other, Reservation)
    hold = await ledger.runs.reserve_call(
        first.run_id, worst_case_usd=Decimal("0.03"), limits=limits, now=NOW
    )
    assert isinstance(hold, CallHold) and hold.key is not None
    # $0.03 held of $0.05: another $0.03 call (of any run of this person) does not fit ...
    refused = await ledger.runs.reserve_call(
        other.run_id, worst_case_usd=Decimal("0.03"), limits=limits, now=NOW
    )
    assert isinstance(refused, BudgetStop) and refused.budget == "user_daily"
    assert refused.spent_usd == Decimal("0.03") and refused.call_worst_usd == Decimal("0.03")
    assert refused.resets_at == datetime(2026, 11, 19, tzinfo=UTC)
    # ... a $0.02 one does.
    small = await ledger.runs.reserve_call(
        other.run_id, worst_case_usd=Decimal("0.02"), limits=limits, now=NOW
    )
    assert isinstance(small, CallHold)
    await ledger.runs.release_call(small)
    # The record settles the hold to the real cost: $0.01 spent leaves room for $0.03.
    await ledger.runs.record_call(first.run_id, costing("0.010"), key=hold.key, now=NOW)
    again = await ledger.runs.reserve_call(
        other.run_id, worst_case_usd=Decimal("0.03"), limits=limits, now=NOW
    )
    assert isinstance(again, CallHold)
    # A run's end gives back what its calls still hold (a call cut off by a stop).
    await ledger.runs.finish_run(other.run_id, "interrupted", elapsed_s=1.0, now=NOW)
    after = await ledger.runs.reserve_call(
        first.run_id, worst_case_usd=Decimal("0.04"), limits=limits, now=NOW
    )
    assert isinstance(after, CallHold)


async def test_a_lone_call_may_take_a_budgets_last_room_and_then_nothing_more_runs(
    ledger: Ledger,
) -> None:
    # A budget smaller than one call's worst case still runs, one call at a time.
    for n in range(1, 6):
        await finished_run(ledger, "0.001", n=n)
    limits = Limits(user_daily=Decimal("0.05"), workspace_monthly=None)
    run = await reserve(ledger, user="U8", user_budget=Decimal("0.05"))
    assert isinstance(run, Reservation)
    big = Decimal("0.15")
    hold = await ledger.runs.reserve_call(run.run_id, worst_case_usd=big, limits=limits, now=NOW)
    assert isinstance(hold, CallHold)
    second = await ledger.runs.reserve_call(run.run_id, worst_case_usd=big, limits=limits, now=NOW)
    assert isinstance(second, BudgetStop)  # the first still holds: not alone any more
    await ledger.runs.record_call(run.run_id, costing("0.06"), key=hold.key, now=NOW)
    used_up = await ledger.runs.reserve_call(
        run.run_id, worst_case_usd=Decimal("0.001"), limits=limits, now=NOW
    )
    assert isinstance(used_up, BudgetStop) and used_up.spent_usd == Decimal("0.06")
    # Without a budget nothing is held.
    free = await ledger.runs.reserve_call(
        run.run_id, worst_case_usd=big, limits=Limits(None, None), now=NOW
    )
    assert isinstance(free, CallHold) and free.key is None


async def test_runs_that_never_posted_are_not_counted_as_runs(ledger: Ledger) -> None:
    posted = await reserve(ledger, user="U1")
    never = await reserve(ledger, user="U2")  # its first message could not be posted
    assert isinstance(posted, Reservation) and isinstance(never, Reservation)
    await ledger.runs.set_thread(posted.run_id, "C1", "1.000001")
    for run in (posted, never):
        await ledger.runs.finish_run(run.run_id, "finished", elapsed_s=1.0, now=NOW)
    day = (NOW.replace(hour=0, minute=30), NOW.replace(hour=23))
    report = await ledger.reports.summary("T1", since=day[0], until=day[1])
    daily = await ledger.reports.daily("T1", days=1, today=NOW.date())
    assert report.runs == 1 and [s.id for s in report.top_users] == ["U1"]
    assert daily[0].runs == 1
