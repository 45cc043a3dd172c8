"""Scenario tests: Retry of a failed example, served from the shared ledger.

Slack delivers a click to any instance, and a restart empties every process's memory: the
Retry must work wherever it lands, once at a time per component across instances, and say
clearly when the run's question and strategy are no longer kept. Two instances are two real
apps in HTTP mode (each its own Claude stand-in) behind one Slack stand-in, sharing a
PostgreSQL ledger; the click is posted, signed, to the instance chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.ledger import initial_settings
from bot.sandbox.slack.server import SlackSandbox
from bot.slack import workflows
from bot.slack.runs import Runs
from tests.harness import Stack, running_stack
from tests.ledger.conftest import fresh_postgres_schema
from tests.slack.test_costs_and_budgets import seed_spending
from tests.slack.test_run_controls import QUESTION, a_failed_example, ephemeral_for

RETRY = "orchestrate_retry"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


@contextlib.asynccontextmanager
async def two_instances(tmp: Path, database_url: str) -> AsyncIterator[tuple[Stack, Stack]]:
    async with (
        SlackSandbox() as slack,
        running_stack(tmp / "a", mode="http", slack=slack, database_url=database_url) as first,
        running_stack(tmp / "b", mode="http", slack=slack, database_url=database_url) as second,
    ):
        yield first, second


def examples(*stacks: Stack) -> int:
    return sum(r.role == "example" for s in stacks for r in s.claude.requests)


async def click(stack: Stack, on: Stack, message: Any, *, user_id: str = "U0ALICE") -> None:
    """`user_id` clicks Retry on `message`; Slack delivers it to instance `on`."""
    payload = stack.slack.click_payload("C0GENERAL", message.ts, RETRY, user_id=user_id)
    await stack.slack.send_interactive(payload, url=on.events_url)


async def followups(postgres_url: str, run_id: str) -> list[tuple[str, str, int]]:
    """(user, status, calls) of each admitted follow-up of `run_id`, oldest first, read
    straight from the shared PostgreSQL ledger."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT user_id, status, calls FROM runs WHERE parent_run_id = $1"
            " AND status <> 'refused' ORDER BY started_at",
            run_id,
        )
    finally:
        await conn.close()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def retry_value(failed: Any) -> str:
    """What a failure's Retry button carries: `<run id>:<component>`."""
    return str(
        next(e["value"] for b in failed.blocks if b["type"] == "actions" for e in b["elements"])
    )


def retry_target(failed: Any) -> str:
    """The run id a failure's Retry button names."""
    return retry_value(failed).rpartition(":")[0]


async def test_a_retry_clicked_on_an_instance_that_did_not_run_the_run(
    tmp_path: Path, postgres_url: str
) -> None:
    async with two_instances(tmp_path, postgres_url) as (first, second):
        failed = await a_failed_example(first)
        before = examples(first, second)
        await click(first, second, failed)
        told = await ephemeral_for(first, "U0ALICE")
        await second.services.runs.wait_idle()
        _, replies = first.thread()
        served_by_second = examples(second)
        after = examples(first, second)
    assert "Retrying" in told[0].text
    assert (after, served_by_second) == (before + 1, 1)  # one call, made by the second
    assert "Illustrated by Haiku" in str(replies[-2].blocks)
    assert "Retried by <@U0ALICE>" in replies[-1].text
    assert await followups(postgres_url, retry_target(failed)) == [("U0ALICE", "finished", 1)]


async def test_a_retry_after_the_process_that_ran_the_run_restarted(tmp_path: Path) -> None:
    async with SlackSandbox() as slack:
        async with running_stack(tmp_path, slack=slack) as before_restart:
            failed = await a_failed_example(before_restart)
        async with running_stack(tmp_path, slack=slack) as restarted:
            await click(restarted, restarted, failed)
            told = await ephemeral_for(restarted, "U0ALICE")
            await restarted.services.runs.wait_idle()
            _, replies = restarted.thread()
            calls = [r.role for r in restarted.claude.requests]
    assert "Retrying" in told[0].text
    assert calls == ["example"]  # the strategy came from the ledger, not a new plan
    assert "Illustrated by Haiku" in str(replies[-2].blocks)
    assert "Retried by <@U0ALICE>" in replies[-1].text


async def test_a_double_click_reaching_two_instances_retries_once(
    tmp_path: Path, postgres_url: str
) -> None:
    async with two_instances(tmp_path, postgres_url) as (first, second):
        failed = await a_failed_example(first)
        before = examples(first, second)
        for stack in (first, second):  # whichever instance wins, its retry is still running
            stack.claude.add_rule(role="example", delay_s=1.0, times=1)
        await asyncio.gather(click(first, first, failed), click(first, second, failed))
        told = [e.text for e in await ephemeral_for(first, "U0ALICE", count=2)]
        await asyncio.gather(*(s.services.runs.wait_idle() for s in (first, second)))
        after = examples(first, second)
        _, replies = first.thread()
    assert after == before + 1
    assert sorted("is already being retried" in t for t in told) == [False, True]
    assert any(t.startswith("↻ Retrying") for t in told)
    assert sum("Retried by" in r.text for r in replies) == 1
    assert await followups(postgres_url, retry_target(failed)) == [("U0ALICE", "finished", 1)]


async def test_a_retry_that_failed_again_can_be_retried_from_either_instance(
    tmp_path: Path, postgres_url: str
) -> None:
    async with two_instances(tmp_path, postgres_url) as (first, second):
        failed = await a_failed_example(first)
        second.claude.add_rule(role="example", fault="refusal", times=1)
        await click(first, second, failed)
        # The click is acked before it is handled: wait until the retry has begun.
        await ephemeral_for(first, "U0ALICE")
        await second.services.runs.wait_idle()
        _, replies = first.thread()
        failed_again = replies[-2]
        assert "could not be illustrated" in failed_again.text
        assert RETRY in str(failed_again.blocks)  # retry again, from the new failure

        await click(first, first, failed_again)
        told = await ephemeral_for(first, "U0ALICE", count=2)
        await first.services.runs.wait_idle()
        _, replies = first.thread()
    assert ["Retrying" in e.text for e in told] == [True, True]
    assert "Illustrated by Haiku" in str(replies[-2].blocks)
    assert await followups(postgres_url, retry_target(failed)) == [
        ("U0ALICE", "finished", 1),
        ("U0ALICE", "finished", 1),
    ]


async def test_a_retry_of_a_run_whose_question_is_not_kept_says_it_is_no_longer_available(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, ledger_store_questions=False) as stack:
        failed = await a_failed_example(stack)
        before = examples(stack)
        await click(stack, stack, failed)
        told = await ephemeral_for(stack, "U0ALICE")
        await stack.services.runs.wait_idle()
        after = examples(stack)
    assert "can no longer be retried" in told[0].text and "no longer available" in told[0].text
    assert after == before  # nothing called, nothing billed
    assert follow_up_count(stack) == 0


async def test_a_retry_of_a_run_whose_question_was_erased_says_it_is_no_longer_available(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        failed = await a_failed_example(stack)
        with sqlite3.connect(ledger_file(stack)) as db:  # an erasure of the private text
            db.execute("UPDATE runs SET question = NULL")
        db.close()
        before = examples(stack)
        await click(stack, stack, failed)
        told = await ephemeral_for(stack, "U0ALICE")
        after = examples(stack)
    assert "no longer available" in told[0].text
    assert after == before and follow_up_count(stack) == 0


async def test_only_a_component_that_failed_can_be_retried(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        failed = await a_failed_example(stack)
        payload = stack.slack.click_payload("C0GENERAL", failed.ts, RETRY)
        # A forged click naming a component whose example was written (not the one that
        # failed: the example calls go out together, so which one was refused varies).
        run_id, _, index = retry_value(failed).rpartition(":")
        payload["actions"][0]["value"] = f"{run_id}:{1 if index == '0' else 0}"
        before = examples(stack)
        await stack.slack.send_interactive(payload)
        told = await ephemeral_for(stack, "U0ALICE")
        after = examples(stack)
    assert "Only an example that could not be illustrated can be retried" in told[0].text
    assert after == before and follow_up_count(stack) == 0


async def test_a_retry_clicked_while_the_run_is_still_working_is_asked_to_wait(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.claude.add_rule(role="example", fault="refusal", times=1)
        stack.claude.add_rule(role="review", delay_s=3.0, times=1)
        await stack.command(QUESTION)
        failed = await failure_posted(stack)
        await click(stack, stack, failed)
        told = await ephemeral_for(stack, "U0ALICE")
        await stack.settle()
    assert "still working" in told[0].text
    assert follow_up_count(stack) == 0


async def failure_posted(stack: Stack) -> Any:
    """The run's "could not be illustrated" reply, once it is in the thread."""
    async with asyncio.timeout(20):
        while True:
            replies = stack.thread()[1] if stack.slack.messages("C0GENERAL") else []
            failed = [r for r in replies if "could not be illustrated" in r.text]
            if failed:
                return failed[0]
            await asyncio.sleep(0.02)


def ledger_file(stack: Stack) -> str:
    return stack.settings.database_url.removeprefix("sqlite:///")


def follow_up_count(stack: Stack) -> int:
    with sqlite3.connect(ledger_file(stack)) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM runs WHERE parent_run_id IS NOT NULL"
        ).fetchone()
    db.close()
    return int(count)


class BuggyRetry:
    """The stack's own pipeline, except that a Retry's work raises (a bug cannot be
    provoked over a wire)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def example_again(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")


async def test_a_retry_ended_by_a_bug_says_so_and_its_button_may_retry_again(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        failed = await a_failed_example(stack)
        run_id, _, index = retry_value(failed).rpartition(":")
        services = stack.services
        runs = Runs(
            pipeline=BuggyRetry(services.pipeline),
            ledger=services.ledger.writer,
            governance=services.governance,
            poster=services.poster,
            settings=stack.settings,
            engine=services.runs.engine,
        )
        workflows.register(runs)  # a Retry is a workflow: it runs on the registry it names
        run = await services.ledger.runs.get_run(run_id)
        assert run is not None
        try:
            started = await runs.retries.retry(run, int(index), by="U0ALICE", button=failed.ts)
            await runs.wait_idle()
        finally:
            workflows.unregister(runs)
        retried = await services.ledger.runs.followups(run_id)
        pending = await runs.engine.pending_executors()
        _, replies = stack.thread()
        # The bug posted no new button: the same one retries again (on the working registry).
        before = examples(stack)
        await click(stack, stack, failed)
        again = await ephemeral_for(stack, "U0ALICE")
        await services.runs.wait_idle()
        after = examples(stack)
    assert "Retrying" in started.text
    assert retried.count == 1 and not pending  # the retry ended (failed), not left pending
    assert "an internal error stopped the retry of" in replies[-1].text  # not left unanswered
    assert "Retrying" in again[0].text and after == before + 1


@pytest.mark.parametrize(
    "forged",
    [
        "{run}:-1",  # a negative index
        "{run}:99999999999999999999",  # past any strategy
        "{run}:" + "9" * 5000,  # past what int() will parse
        "{run}:²",  # a digit to str.isdigit, not to int()
        "{run}:one",  # not a number
        "{run}:",  # no index
        "{failed}@T0OTHER",  # the very click, but the run belongs to another workspace
    ],
)
async def test_a_forged_retry_value_is_refused_with_a_reply_and_costs_nothing(
    tmp_path: Path, forged: str
) -> None:
    async with running_stack(tmp_path) as stack:
        failed = await a_failed_example(stack)
        run_id, value = retry_target(failed), retry_value(failed)
        payload = stack.slack.click_payload("C0GENERAL", failed.ts, RETRY)
        if forged.endswith("@T0OTHER"):
            with sqlite3.connect(ledger_file(stack)) as db:
                db.execute("UPDATE runs SET team_id = 'T0OTHER' WHERE id = ?", (run_id,))
            db.close()
        payload["actions"][0]["value"] = forged.format(run=run_id, failed=value).split("@")[0]
        before = examples(stack)
        await stack.slack.send_interactive(payload)
        told = await ephemeral_for(stack, "U0ALICE")
        await stack.settle()
        after = examples(stack)
    assert len(told) == 1
    assert "can be retried" in told[0].text or "no longer available" in told[0].text
    assert after == before and follow_up_count(stack) == 0


async def test_a_retry_button_clicked_again_after_its_retry_illustrated_it_costs_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        failed = await a_failed_example(stack)
        await click(stack, stack, failed)
        await ephemeral_for(stack, "U0ALICE")
        await stack.services.runs.wait_idle()
        before = examples(stack)
        # The failure's button is still in the thread; a click on it later, a stale double
        # click, or one reaching another instance after the first retry ended.
        await click(stack, stack, failed)
        told = await ephemeral_for(stack, "U0ALICE", count=2)
        await stack.settle()
        after = examples(stack)
    assert "Only an example that could not be illustrated can be retried" in told[1].text
    assert after == before and follow_up_count(stack) == 1


async def test_a_retry_cut_off_at_shutdown_is_under_way_until_the_restart_finishes_it(
    tmp_path: Path,
) -> None:
    async with SlackSandbox() as slack:
        async with running_stack(tmp_path, slack=slack) as stack:
            failed = await a_failed_example(stack)
            stack.claude.add_rule(role="example", delay_s=30.0, times=1)
            await click(stack, stack, failed)
            await ephemeral_for(stack, "U0ALICE")
            await stack.services.runs.drain(0.0)  # shutdown: the retry in flight is suspended
            await click(stack, stack, failed)  # clicked again meanwhile: not a second retry
            told = await ephemeral_for(stack, "U0ALICE", count=2)
        async with running_stack(tmp_path, slack=slack) as restarted:
            # The engine resumes the suspended retry as the instance starts again.
            for _ in range(200):
                _, replies = restarted.thread()
                if any("Retried by" in r.text for r in replies):
                    break
                await asyncio.sleep(0.05)
            await restarted.services.runs.wait_idle()
            _, replies = restarted.thread()
    assert "Retrying" in told[0].text and "is already being retried" in told[1].text
    assert sum("Retried by <@U0ALICE>" in r.text for r in replies) == 1


async def test_a_retry_over_the_clickers_budget_is_refused_costs_nothing_and_may_go_later(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, budget_user_daily_usd=Decimal("1.00")) as stack:
        failed = await a_failed_example(stack)
        await seed_spending(stack, user_id="U0ALICE", cost_usd=Decimal("1.00"))
        before = examples(stack)
        await click(stack, stack, failed)
        told = await ephemeral_for(stack, "U0ALICE")
        await stack.settle()
        after = examples(stack)
        # An admin raises the daily budget: the same button's next click is a new decision.
        defaults = initial_settings(stack.settings)
        raised = dataclasses.replace(defaults, user_daily_usd=Decimal("5.00"))
        await stack.services.governance.save(
            "T0SANDBOX", raised, changed_by="U0ADMIN", defaults=defaults
        )
        await click(stack, stack, failed)
        again = await ephemeral_for(stack, "U0ALICE", count=2)
        await stack.services.runs.wait_idle()
        retried = examples(stack)
    assert "daily" in told[0].text and "$1.0000" in told[0].text
    assert after == before  # refused before any call
    assert "Retrying" in again[1].text and retried == before + 1
