"""Conformance: what a Retry of a failed example needs from the ledger, the same on SQLite and
PostgreSQL (`ledger_url`): a run's kept strategy with the components that failed, kept only
while the question is, and a claim that marks a retry under way until it is released."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from bot.core.models import Component, Strategy
from bot.core.usage import CallRecord
from bot.ledger import Ledger, LedgerError, Reservation, open_ledger
from tests.ledger.test_ledger_conformance import EXAMPLE, NOW, PLAN, REVIEW, RawSql, run_with

STRATEGY = Strategy(
    title="Ship in slices",
    essence="Small, reversible steps",
    components=(
        Component("Feature flags", "Show a flag guarding a change"),
        Component("Canary «ünïcode»", "Roll out to 1% first; 'quotes' and \"more\""),
        Component("Rollback", "Undo in one command"),
    ),
)


async def test_a_kept_strategy_reads_back_with_the_components_that_failed(
    ledger: Ledger,
) -> None:
    failed = replace(EXAMPLE, component_index=1, outcome="error", error="overloaded")
    cut = replace(EXAMPLE, component_index=2, outcome="invalid", error="refused")
    run_id = await run_with(ledger, [PLAN, EXAMPLE, failed, cut, REVIEW])
    assert await ledger.runs.kept_strategy(run_id) is None  # nothing kept yet

    await ledger.runs.record_strategy(run_id, STRATEGY, now=NOW)
    await ledger.runs.record_strategy(run_id, STRATEGY, now=NOW)  # a replayed write: harmless

    kept = await ledger.writer.kept_strategy(run_id)
    assert kept is not None
    assert (kept.question, kept.strategy, kept.failed) == ("How do we ship?", STRATEGY, {1, 2})
    assert await ledger.runs.kept_strategy("no-such-run") is None
    with pytest.raises(LedgerError, match="no run"):
        await ledger.runs.record_strategy("no-such-run", STRATEGY)


async def test_the_strategy_is_not_kept_when_questions_are_not(
    ledger_url: str, raw_sql: RawSql
) -> None:
    async with open_ledger(ledger_url, store_questions=False) as ledger:
        run_id = await run_with(ledger, [PLAN])
        await ledger.writer.record_strategy(run_id, STRATEGY)
    # Even with a question put back by hand, no strategy was ever written.
    await raw_sql(ledger_url, f"UPDATE runs SET question = 'q' WHERE id = '{run_id}'")
    async with open_ledger(ledger_url) as ledger:
        assert await ledger.runs.kept_strategy(run_id) is None


async def test_a_run_whose_question_was_erased_gives_no_strategy(
    ledger: Ledger, ledger_url: str, raw_sql: RawSql
) -> None:
    run_id = await run_with(ledger, [PLAN])
    await ledger.runs.record_strategy(run_id, STRATEGY)
    await raw_sql(ledger_url, f"UPDATE runs SET question = NULL WHERE id = '{run_id}'")
    assert await ledger.runs.kept_strategy(run_id) is None


async def test_a_strategy_the_database_refuses_is_logged_without_its_text(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    await ledger.writer.record_strategy("no-such-run", STRATEGY)  # refused: a bug, not an outage
    refused = [r for r in caplog.records if "refused a write" in r.getMessage()]
    assert refused and "no-such-run" in refused[0].getMessage()
    assert not any(
        secret in caplog.text for secret in ("Ship in slices", "Feature flags", "Undo in one")
    )


async def follow_up(ledger: Ledger, run_id: str, calls: list[CallRecord]) -> None:
    """A follow-up of `run_id` (a Retry, or a question asked in its thread) with `calls`."""
    reserved = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U2", question="How do we ship?",
        worst_case_usd=Decimal("0.01"), user_budget=None, workspace_budget=None,
        parent_run_id=run_id, now=NOW,
    )  # fmt: skip
    assert isinstance(reserved, Reservation)
    for record in calls:
        await ledger.runs.record_call(reserved.run_id, record, now=NOW)
    await ledger.runs.finish_run(reserved.run_id, "finished", elapsed_s=1.0, now=NOW)


async def test_a_component_a_retry_illustrated_is_no_longer_failed(ledger: Ledger) -> None:
    first = replace(EXAMPLE, component_index=0, outcome="error", error="overloaded")
    second = replace(EXAMPLE, component_index=1, outcome="invalid", error="refused")
    run_id = await run_with(ledger, [PLAN, first, second, REVIEW])
    await ledger.runs.record_strategy(run_id, STRATEGY, now=NOW)

    await follow_up(ledger, run_id, [replace(EXAMPLE, component_index=0)])  # retried: written
    await follow_up(ledger, run_id, [second])  # retried: failed again
    # A question asked in the thread plans anew: its examples are another strategy's.
    await follow_up(ledger, run_id, [PLAN, replace(EXAMPLE, component_index=1), REVIEW])

    kept = await ledger.runs.kept_strategy(run_id)
    assert kept is not None and kept.failed == {1}
