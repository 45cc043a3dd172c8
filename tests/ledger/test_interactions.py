"""Conformance: stop requests and votes, the same on SQLite and PostgreSQL (`ledger_url`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bot.core.usage import TokenUsage
from bot.ledger import Ledger, LedgerError
from tests.ledger.test_ledger_conformance import (
    DAY,
    EXAMPLE,
    NOW,
    OPUS,
    PLAN,
    REVIEW,
    SONNET,
    call,
    run_with,
)


async def test_the_first_stop_request_wins_and_the_owner_finds_it(ledger: Ledger) -> None:
    run_id = await run_with(ledger, [PLAN], finish=False)
    other = await run_with(ledger, [PLAN], finish=False)
    assert await ledger.interactions.request_stop(run_id, "U1") is True
    assert await ledger.interactions.request_stop(run_id, "U1") is False  # double click
    assert await ledger.interactions.request_stop(run_id, "U9") is False  # someone else, later
    assert await ledger.interactions.stop_requests_for([run_id, other]) == {run_id: "U1"}
    assert await ledger.interactions.stop_requests_for([]) == {}
    with pytest.raises(LedgerError, match="no run"):
        await ledger.interactions.request_stop("nope", "U1")


async def test_one_vote_per_person_per_run_changeable_with_a_reason_for_a_down_vote(
    ledger: Ledger,
) -> None:
    run_id = await run_with(ledger, [PLAN])
    assert await ledger.interactions.vote(run_id, "U1", -1) is None
    assert await ledger.interactions.set_vote_reason(run_id, "U1", "missed the auth part")
    assert await ledger.interactions.vote(run_id, "U1", -1) == -1  # same again: kept
    assert await ledger.interactions.vote(run_id, "U1", 1) == -1  # changed their mind
    assert not await ledger.interactions.set_vote_reason(run_id, "U1", "only on a 👎")
    report = await ledger.interactions.feedback("T1", since=DAY[0], until=DAY[1])
    assert (report.up, report.down, report.voted_runs) == (1, 0, 1)
    with pytest.raises(LedgerError, match="no run"):
        await ledger.interactions.vote("nope", "U1", 1)


async def test_feedback_per_period_and_model_set_with_the_cost_per_up_vote(
    ledger: Ledger,
) -> None:
    sonnet_plan = call(SONNET, "plan", TokenUsage(input_tokens=1_000), "0.002")
    full = await run_with(ledger, [PLAN, EXAMPLE, REVIEW])  # 0.05865
    cheap = await run_with(ledger, [sonnet_plan, EXAMPLE])  # 0.00265
    await run_with(ledger, [PLAN])  # 0.044, nobody voted
    earlier = await run_with(ledger, [PLAN], at=NOW - timedelta(days=3))
    elsewhere = await run_with(ledger, [PLAN], team="T2")
    for run_id, user, vote in [
        (full, "U1", 1),
        (full, "U2", 1),
        (full, "U3", -1),
        (cheap, "U1", -1),
        (earlier, "U1", 1),
        (elsewhere, "U1", 1),
    ]:
        await ledger.interactions.vote(run_id, user, vote)  # type: ignore[arg-type]

    report = await ledger.interactions.feedback("T1", since=DAY[0], until=DAY[1])

    assert (report.up, report.down, report.voted_runs) == (2, 2, 2)
    assert report.satisfaction_pct == Decimal(50)
    assert report.spent_usd == Decimal("0.10530")
    assert report.cost_per_up_usd == Decimal("0.05265")
    by_set = {s.models: (s.up, s.down) for s in report.by_model_set}
    assert by_set == {
        tuple(sorted((OPUS, EXAMPLE.model, SONNET))): (2, 1),
        tuple(sorted((SONNET, EXAMPLE.model))): (0, 1),
    }
    empty = await ledger.interactions.feedback("T9", since=DAY[0], until=DAY[1])
    assert (empty.up, empty.satisfaction_pct, empty.cost_per_up_usd) == (0, None, None)
