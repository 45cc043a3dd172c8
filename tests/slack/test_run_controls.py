"""Scenario tests: the buttons on a run, clicked over the wire (Socket Mode and signed HTTP).

Stop ends a run at once for its asker (or an admin), and only for them; a Stop clicked on
another instance reaches the run through the engine's cancellation; a double click counts
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS
from dbos import _core as dbos_core
from dbos import error as dbos_error

from bot.ledger import open_ledger
from bot.sandbox.slack.server import SlackSandbox
from bot.slack import engine
from tests.harness import Mode, Stack, running_stack

QUESTION = "Design a REST API for a social network"


async def examples_in_flight(stack: Stack) -> None:
    """Wait until the example calls have started streaming their answers."""
    async with asyncio.timeout(20):
        while not any(  # noqa: ASYNC110 - the sandbox has no notification for this
            r.role == "example" and r.first_token is not None for r in stack.claude.requests
        ):
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def two_instances(tmp_path: Path) -> AsyncIterator[tuple[SlackSandbox, Stack, Stack]]:
    """Two real apps (HTTP mode, each its own Claude stand-in) behind one Slack, on one
    ledger and so one run engine, with a run on the first whose examples are in flight."""
    async with (
        SlackSandbox() as slack,
        running_stack(tmp_path, mode="http", slack=slack, time_scale=1.0) as first,
        running_stack(tmp_path, mode="http", slack=slack, time_scale=1.0) as second,
    ):
        await first.command(QUESTION)
        await examples_in_flight(first)
        yield slack, first, second


async def ephemeral_for(stack: Stack, user_id: str, count: int = 1) -> list[Any]:
    async with asyncio.timeout(10):
        while len(stack.slack.ephemerals(user_id)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return stack.slack.ephemerals(user_id)


def total_text(message: Any) -> str:
    return str(message.text) + str(message.blocks)


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_the_asker_stops_a_run_mid_examples_and_the_thread_shows_the_bill(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode, time_scale=1.0) as stack:
        await stack.command(QUESTION)
        await examples_in_flight(stack)
        top, _ = stack.thread()
        assert "orchestrate_stop" in str(top.blocks)  # a Stop button while it works

        await stack.slack.click("C0GENERAL", top.ts, "orchestrate_stop", url=stack.events_url)
        clicked = time.monotonic()
        await stack.settle()

        top, replies = stack.thread()
        requests = list(stack.claude.requests)
        async with open_ledger(stack.settings.database_url) as ledger:
            now = datetime.now(UTC)
            since, until = now - timedelta(days=1), now + timedelta(days=1)
            run = await ledger.reports.summary("T0SANDBOX", since=since, until=until)
        run_rows = run_statuses(stack)
    examples = [r for r in requests if r.role == "example"]
    # Calls in flight were cut at once; none started after the click; no review was asked.
    assert examples and all(r.finished is not None and r.finished - clicked < 1.0 for r in examples)
    assert all(r.started < clicked for r in requests)
    assert not any(r.role == "review" for r in requests)
    notice = replies[-1]
    assert "Stopped by <@U0ALICE>" in notice.text
    assert "orchestrate_stop" not in str(top.blocks) and "Stopped" in total_text(top)
    # The bill in the thread is what the ledger recorded, cut-off calls included.
    assert run.calls == len(requests) and run_rows == [("interrupted", "stopped by U0ALICE")]
    assert f"${run.total_usd:.4f}" in total_text(notice)
    assert run.total_usd > Decimal(0)


async def test_the_asker_s_stop_cuts_a_run_this_instance_owns_without_waiting_for_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DBOS's watcher of cancelled workflows (what stops a run on another instance) is made
    # too slow to help: the click must reach the run here directly.
    monkeypatch.setattr(dbos_core, "_PREEMPTIBLE_POLL_INTERVAL_SEC", 60.0)
    async with running_stack(tmp_path, time_scale=1.0) as stack:
        await stack.command(QUESTION)
        await examples_in_flight(stack)
        top, _ = stack.thread()
        await stack.slack.click("C0GENERAL", top.ts, "orchestrate_stop")
        clicked = time.monotonic()
        await stack.settle()
        _, replies = stack.thread()
        examples = [r for r in stack.claude.requests if r.role == "example"]
    assert "Stopped by <@U0ALICE>" in replies[-1].text
    assert all(r.finished is not None and r.finished - clicked < 5.0 for r in examples)


def run_statuses(stack: Stack) -> list[tuple[str, str | None]]:
    """Every run's status and error, read straight from the SQLite ledger file."""
    path = stack.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        return [(str(s), e) for s, e in db.execute("SELECT status, error FROM runs")]


async def test_someone_else_cannot_stop_the_run_and_is_told_who_can(tmp_path: Path) -> None:
    async with running_stack(tmp_path, time_scale=0.3) as stack:
        await stack.command(QUESTION)
        await examples_in_flight(stack)
        top, _ = stack.thread()
        await stack.slack.click("C0GENERAL", top.ts, "orchestrate_stop", user_id="U0BOB")
        told = await ephemeral_for(stack, "U0BOB")
        await stack.settle()
        _, replies = stack.thread()
    assert "Only <@U0ALICE> or an admin can stop this run" in told[0].text
    assert "Reviewed by" in total_text(replies[-1])  # the run went on to its end


async def test_a_stop_clicked_on_another_instance_stops_the_run_through_the_engine(
    tmp_path: Path,
) -> None:
    # Two instances (real apps in HTTP mode, each its own Claude stand-in) behind one Slack,
    # on one ledger and so one run engine. The run is on the first; the click reaches the
    # second, which does not run it: only the engine's cancellation can tell the first.
    async with two_instances(tmp_path) as (slack, first, second):
        top, _ = first.thread()
        run_id = next(iter(first.services.runs._stops))
        assert not second.services.runs._stops  # the second runs nothing
        clicked = time.monotonic()
        await slack.click(
            "C0GENERAL", top.ts, "orchestrate_stop", user_id="U0ADMIN", url=second.events_url
        )
        await first.settle()
        top, replies = first.thread()
        requests = list(first.claude.requests)
        status = await first.services.runs.engine.status(run_id)
        async with open_ledger(first.settings.database_url) as ledger:
            now = datetime.now(UTC)
            since, until = now - timedelta(days=1), now + timedelta(days=1)
            run = await ledger.reports.summary("T0SANDBOX", since=since, until=until)
        rows = run_statuses(first)
    examples = [r for r in requests if r.role == "example"]
    closed = max(r.finished or 0 for r in examples) - clicked
    print(f"click on another instance -> calls closed: {closed:.3f} s")
    assert examples and all(r.finished is not None for r in examples)
    assert closed < 2.0  # DBOS's watcher polls once a second; ~1.5 s is the target
    assert not any(r.role == "review" for r in requests) and not second.claude.requests
    assert "Stopped by <@U0ADMIN>" in replies[-1].text
    assert "orchestrate_stop" not in str(top.blocks) and "Stopped" in total_text(top)
    # The calls cut off were recorded, the row closed, and the workflow is cancelled.
    assert run.calls == len(requests) and rows == [("interrupted", "stopped by U0ADMIN")]
    assert f"${run.total_usd:.4f}" in total_text(replies[-1])
    assert status == "CANCELLED"


async def test_calls_that_return_before_the_engine_notices_a_stop_are_kept_and_none_follow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DBOS's watcher is made too slow to cut the examples: they return after the run was
    # cancelled, and the engine refuses their checkpoints. Their calls are still recorded,
    # and the next step (the review) is refused: the run stops there, for who clicked.
    monkeypatch.setattr(dbos_core, "_PREEMPTIBLE_POLL_INTERVAL_SEC", 60.0)
    async with two_instances(tmp_path) as (slack, first, second):
        top, _ = first.thread()
        await slack.click(
            "C0GENERAL", top.ts, "orchestrate_stop", user_id="U0ADMIN", url=second.events_url
        )
        await first.settle()
        top, replies = first.thread()
        requests = list(first.claude.requests)
        rows = run_statuses(first)
        async with open_ledger(first.settings.database_url) as ledger:
            now = datetime.now(UTC)
            since, until = now - timedelta(days=1), now + timedelta(days=1)
            run = await ledger.reports.summary("T0SANDBOX", since=since, until=until)
    examples = [r for r in requests if r.role == "example"]
    # Not cut: each streamed its whole answer.
    assert examples and all(r.streamed_tokens >= (r.usage or {})["output_tokens"] for r in examples)
    assert not any(r.role == "review" for r in requests)
    assert "Stopped by <@U0ADMIN>" in replies[-1].text
    assert run.calls == len(requests) and rows == [("interrupted", "stopped by U0ADMIN")]


@pytest.mark.parametrize("where", ["here", "elsewhere", "elsewhere, noticed late"])
async def test_a_stop_logs_no_warning_or_error_and_one_line_at_most_about_the_cancellation(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """A Stop cancels the run's workflow. DBOS, finding the outcome already CANCELLED when
    the run ends, warns that it could not record it and logs the cancellation it reads back
    as an error; a Stop here also cuts the run's calls, and DBOS warns of each step's task
    cancelled. None of it is news: the run says how it ended, in its own lines."""
    if where.endswith("late"):  # the calls return, and are refused their checkpoints
        monkeypatch.setattr(dbos_core, "_PREEMPTIBLE_POLL_INTERVAL_SEC", 60.0)
    async with two_instances(tmp_path) as (slack, first, second):
        top, _ = first.thread()
        caplog.set_level(logging.INFO)
        caplog.clear()
        on = first if where == "here" else second
        await slack.click(
            "C0GENERAL", top.ts, "orchestrate_stop", user_id="U0ADMIN", url=on.events_url
        )
        await first.settle()
        _, replies = first.thread()
    assert "Stopped by <@U0ADMIN>" in replies[-1].text
    # DBOS is one per process: a database an earlier test of this worker stopped may still
    # be retried by it in the background. Those lines are not about this Stop.
    loud = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.WARNING and "Database connection failed" not in r.getMessage()
    ]
    assert loud == []
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]
    assert "run ended" in ours
    assert sum("cancel" in line for line in ours) <= 1  # "run cancelled in the engine"


def test_dbos_records_of_a_cancellation_not_known_here_are_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only an expected cancellation is quietened: the same warning for a workflow this
    process did not see cancelled (one taken over by another instance), and the error of a
    workflow awaiting another that was cancelled, are logged as DBOS wrote them."""
    engine._route_logs()
    dbos_log = logging.getLogger("dbos")
    with caplog.at_level(logging.INFO):
        dbos_log.warning(
            "Workflow wf-taken-over outcome was not recorded: the workflow is no longer"
            " owned by this execution. Waiting for the recorded outcome"
        )
        assert DBOS.workflow_id is None  # not inside wf-awaiting's workflow
        awaited = dbos_error.DBOSAwaitedWorkflowCancelledError("wf-awaited")
        dbos_log.error("Exception encountered in asynchronous workflow:", exc_info=awaited)
        engine.expect_cancelled("wf-stopped")
        dbos_log.warning(
            "Workflow wf-stopped outcome was not recorded: the workflow is no longer"
            " owned by this execution. Waiting for the recorded outcome"
        )
    kept = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "dbos"]
    assert [level for level, _ in kept] == ["WARNING", "ERROR"]
    assert "wf-taken-over" in kept[0][1]
    assert "DBOSAwaitedWorkflowCancelledError" in kept[1][1]


async def test_a_double_click_on_stop_is_counted_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path, time_scale=1.0) as stack:
        await stack.command(QUESTION)
        await examples_in_flight(stack)
        top, _ = stack.thread()
        click = stack.slack.click_payload("C0GENERAL", top.ts, "orchestrate_stop")
        await asyncio.gather(
            stack.slack.send_interactive(click), stack.slack.send_interactive(click)
        )
        await stack.settle()
        _, replies = stack.thread()
        told = stack.slack.ephemerals("U0ALICE")
    assert [e.text for e in told].count(told[0].text) == 1 and "Stopping" in told[0].text
    assert sum("Stopped by" in r.text for r in replies) == 1


async def a_failed_example(stack: Stack) -> Any:
    """Run a question whose first example call is refused; the failure reply it posts."""
    stack.claude.add_rule(role="example", fault="refusal", times=1)
    await stack.command(QUESTION)
    await stack.settle()
    _, replies = stack.thread()
    failed = next(r for r in replies if "could not be illustrated" in r.text)
    assert "orchestrate_retry" in str(failed.blocks)
    return failed


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_retry_re_runs_the_failed_component_billed_to_the_clicker(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        failed = await a_failed_example(stack)
        examples_before = sum(r.role == "example" for r in stack.claude.requests)
        await stack.slack.click(
            "C0GENERAL", failed.ts, "orchestrate_retry", user_id="U0ADMIN", url=stack.events_url
        )
        told = await ephemeral_for(stack, "U0ADMIN")
        await stack.services.runs.wait_idle()
        _, replies = stack.thread()
        examples_after = sum(r.role == "example" for r in stack.claude.requests)
    path = stack.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        retry = db.execute(
            "SELECT user_id, status, calls, cost_nanos FROM runs WHERE parent_run_id IS NOT NULL"
        ).fetchall()
    assert "Retrying" in told[0].text
    assert examples_after == examples_before + 1  # that one component, nothing else
    assert "Illustrated by Haiku" in str(replies[-2].blocks)
    assert "Retried by <@U0ADMIN>" in replies[-1].text
    assert retry == [("U0ADMIN", "finished", 1, retry[0][3])] and retry[0][3] > 0


async def test_retry_is_for_the_asker_or_an_admin_and_a_double_click_retries_once(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        failed = await a_failed_example(stack)
        await stack.slack.click("C0GENERAL", failed.ts, "orchestrate_retry", user_id="U0BOB")
        refused = await ephemeral_for(stack, "U0BOB")
        examples_before = sum(r.role == "example" for r in stack.claude.requests)
        stack.claude.add_rule(role="example", delay_s=0.5, times=1)
        click = stack.slack.click_payload("C0GENERAL", failed.ts, "orchestrate_retry")
        await asyncio.gather(
            stack.slack.send_interactive(click), stack.slack.send_interactive(click)
        )
        # Both clicks are answered (one retries, one is told it is under way); the retry's
        # call may be admitted after its answer, so wait for it before waiting for idle.
        await ephemeral_for(stack, "U0ALICE", count=2)
        async with asyncio.timeout(10):
            while sum(r.role == "example" for r in stack.claude.requests) == examples_before:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await stack.services.runs.wait_idle()
        examples_after = sum(r.role == "example" for r in stack.claude.requests)
    assert "Only <@U0ALICE> or an admin can retry this run" in refused[0].text
    assert examples_after == examples_before + 1


async def test_a_click_with_a_forged_signature_is_refused_over_http_and_does_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        failed = await a_failed_example(stack)
        calls = len(stack.claude.requests)
        click = stack.slack.click_payload("C0GENERAL", failed.ts, "orchestrate_retry")
        genuine = stack.slack.signing_secret
        stack.slack.signing_secret = "not-the-secret"  # signed by someone without the secret
        try:
            with pytest.raises(TimeoutError, match="HTTP 401"):
                await stack.slack.send_interactive(click, url=stack.events_url)
        finally:
            stack.slack.signing_secret = genuine
        await stack.settle()
    assert len(stack.claude.requests) == calls and stack.slack.ephemerals("U0ALICE") == []


@pytest.mark.parametrize("forged", ["no-such-run", "", "@T0OTHER"])
async def test_a_stop_naming_no_run_of_the_workspace_is_told_so(
    tmp_path: Path, forged: str
) -> None:
    async with running_stack(tmp_path) as stack:
        failed = await a_failed_example(stack)
        click = stack.slack.click_payload("C0GENERAL", failed.ts, "orchestrate_retry")
        run_id = click["actions"][0]["value"].rpartition(":")[0]
        click["actions"][0]["action_id"] = "orchestrate_stop"  # a Stop, forged
        click["actions"][0]["value"] = run_id if forged == "@T0OTHER" else forged
        if forged == "@T0OTHER":  # the run belongs to another workspace
            path = stack.settings.database_url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as db:
                db.execute("UPDATE runs SET team_id = 'T0OTHER' WHERE id = ?", (run_id,))
            db.close()
        await stack.slack.send_interactive(click)
        told = await ephemeral_for(stack, "U0ALICE")
    assert "this button names no run of this workspace" in told[0].text
    assert run_statuses(stack) == [("finished", None)]


async def test_a_retry_whose_example_slack_refuses_is_still_recorded_as_finished(
    tmp_path: Path,
) -> None:
    # The retry's call is made, billed and recorded; Slack then refuses its example (the
    # channel was archived meanwhile, say). That is not a bug in the retry: its ledger row
    # closes as finished with its call, and no "internal error" is claimed in the thread.
    async with running_stack(tmp_path) as stack:
        failed = await a_failed_example(stack)
        stack.slack.fail_next("chat.postMessage", error="is_archived")
        await stack.slack.click("C0GENERAL", failed.ts, "orchestrate_retry")
        await ephemeral_for(stack, "U0ALICE")
        await stack.services.runs.wait_idle()
        _, replies = stack.thread()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute(
            "SELECT status, calls, error FROM runs WHERE parent_run_id IS NOT NULL"
        ).fetchall()
    db.close()
    assert rows == [("finished", 1, None)]
    assert not any("internal error" in r.text for r in replies)
    assert any("is_archived" in str(r.blocks) + r.text for r in replies)  # the loss is named
    assert "Retried by <@U0ALICE>" in replies[-1].text  # the rest of the retry still posted


async def test_a_stop_asked_while_no_instance_runs_the_run_stops_it_when_it_resumes(
    tmp_path: Path,
) -> None:
    """A run paused by a restart (or whose instance died) is run by no one until it is
    resumed: its Stop is kept in the ledger, and the resumed run stops at once, saying who
    stopped it, without another model call."""
    async with SlackSandbox() as slack:
        async with running_stack(tmp_path, slack=slack) as first:
            first.claude.add_rule(role="example", delay_s=60)
            await first.command("Design a REST API")
            await examples_in_flight(first)
            await first.services.runs.drain(0.0)  # suspended: its workflow stays pending
            top = slack.messages("C0GENERAL")[0]
            run_id = str(top.metadata["event_payload"]["run_id"])
        async with open_ledger(first.settings.database_url) as ledger:
            assert await ledger.interactions.request_stop(run_id, "U0ALICE")
        async with running_stack(tmp_path, slack=slack) as resumed:
            async with asyncio.timeout(30):
                while "Stopped by" not in " ".join(r.text for r in resumed.thread()[1]):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            await resumed.services.runs.wait_idle()
            run = await resumed.services.ledger.runs.get_run(run_id)
            served = list(resumed.claude.messages())
    assert served == []  # nothing asked of the models after the resume
    assert run is not None and run.status == "interrupted" and run.error == "stopped by U0ALICE"
