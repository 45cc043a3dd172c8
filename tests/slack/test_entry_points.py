"""Every entry point, bounded and answered: the command, a mention in a channel, a follow-up in
a run's thread and a Retry hold a question to one limit and say so with the same words; a
mention is answered while the ledger cannot be written; text a database cannot store (a NUL,
a lone surrogate) is cleaned and the question still runs, on SQLite and on PostgreSQL.

Driven through the real app over Socket Mode and signed HTTP against the stand-ins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.slack.server import SlackSandbox
from tests.harness import Mode, Stack, running_stack
from tests.ledger.conftest import fresh_postgres_schema
from tests.slack.test_conversations import (
    a_finished_run,
    all_text,
    deliver,
    marks,
    mention,
    until,
)
from tests.slack.test_ledger_outages import full_disk_outage

MODES: list[Mode] = ["socket", "http"]
QUESTION = "Design a REST API for a social network"
LIMIT_LINE = "characters; the limit is 100. Shorten it and ask again."


def told(stack: Stack, user_id: str = "U0ALICE") -> list[str]:
    return [all_text(e) for e in stack.slack.ephemerals(user_id)]


async def until_told(stack: Stack, count: int = 1, user_id: str = "U0ALICE") -> list[str]:
    await until(lambda: len(stack.slack.ephemerals(user_id)) >= count)
    await stack.services.runs.wait_idle()
    return told(stack, user_id)


@pytest.mark.parametrize("mode", MODES)
async def test_a_mention_over_the_limit_is_refused_as_the_command_is(
    tmp_path: Path, mode: Mode
) -> None:
    # 101 characters once decoded: `&amp;` is one character typed, so is `&lt;`.
    typed = "R&D <" + "x" * 96
    async with running_stack(tmp_path, mode=mode, max_question_chars=100) as stack:
        await mention(stack, typed)
        (mentioned,) = await until_told(stack)
        await stack.command(typed)
        commanded = (await until_told(stack, 2))[1]
        fits = "R&D <" + "x" * 95  # exactly 100: runs
        await mention(stack, fits)
        await until(lambda: stack.services.runs.admitted == 1)
        await stack.services.runs.wait_idle()
    assert "⚠ Your question is 101 " + LIMIT_LINE in mentioned
    assert "⚠ Your question is 101 " + LIMIT_LINE in commanded
    assert "R&amp;D &lt;" + "x" * 96 in mentioned  # given back as typed
    assert [r.role for r in stack.claude.requests][:1] == ["plan"]
    assert len([r for r in stack.claude.requests if r.role == "plan"]) == 1


async def test_a_follow_up_over_the_limit_calls_no_model(tmp_path: Path) -> None:
    async with running_stack(tmp_path, max_question_chars=100) as stack:
        root = await a_finished_run(stack)
        calls = len(stack.claude.requests)
        await mention(stack, "what about auth? " + "y" * 100, thread_ts=root)
        (reply,) = await until_told(stack)
    assert "⚠ Your question is 117 " + LIMIT_LINE in reply
    assert len(stack.claude.requests) == calls


async def test_a_mention_of_39k_characters_runs_nothing_and_is_given_back_whole(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, max_question_chars=2000) as stack:
        await mention(stack, "z" * 39_009)  # Slack's messages stop at 40,000
        await until_told(stack)
        await asyncio.sleep(0.3)  # every reply there is to come
        replies = told(stack)
    assert len(replies) <= 5 and "⚠ Your question is 39,009 characters" in replies[0]
    assert sum(r.count("z") for r in replies) == 39_009  # given back whole, in the blocks
    assert stack.claude.requests == []


async def test_a_retry_of_a_question_over_todays_limit_runs_nothing(tmp_path: Path) -> None:
    long_question = QUESTION + " for a team of five, " * 5  # 143 characters
    async with SlackSandbox() as slack:
        # Asked while the limit allowed it (or through an entry point that did not apply it).
        async with running_stack(tmp_path, slack=slack, max_question_chars=2000) as first:
            first.claude.add_rule(role="example", fault="refusal", times=1)
            await first.command(long_question)
            await first.settle()
            _, replies = first.thread()
            failed = next(r for r in replies if "orchestrate_retry" in json.dumps(r.blocks))
        async with running_stack(tmp_path, slack=slack, max_question_chars=100) as second:
            await slack.click("C0GENERAL", failed.ts, "orchestrate_retry")
            (reply,) = await until_told(second)
    length = len(long_question.strip())
    assert f"⚠ This run's question is {length} characters; the limit is 100" in reply
    assert second.claude.requests == []


async def test_a_mention_while_the_ledger_cannot_be_written_is_answered(tmp_path: Path) -> None:
    async with (
        full_disk_outage(tmp_path) as (url, fail, _),
        running_stack(tmp_path, database_url=url) as stack,
    ):
        await fail()  # the event's claim and the run's reservation are writes
        await mention(stack, QUESTION)
        await mention(stack, "what about auth?")
        replies = await until_told(stack, 2)
    assert len(replies) == 2
    assert all("nothing was spent" in r for r in replies)
    assert stack.claude.requests == []


def unstorable_mention(stack: Stack) -> dict[str, Any]:
    _, event = stack.slack.typed_mention(f"@orchestrate {QUESTION} soon")
    # As Slack's JSON can carry them ("\u0000", "\ud83d" alone): no database can store these.
    event["text"] = event["text"].replace(" soon", "\x00 soon \ud83d")
    return event


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_mention_with_a_nul_or_a_lone_surrogate_runs_and_is_recorded(
    tmp_path: Path, backend: str
) -> None:
    async with (
        contextlib_for(backend, tmp_path) as url,
        running_stack(tmp_path, mode="http", database_url=url) as stack,
    ):
        await deliver(stack, unstorable_mention(stack))
        await until(lambda: stack.services.runs.admitted == 1)
        await stack.services.runs.wait_idle()
        top, replies = stack.thread()
        (run_id,) = marks(stack, top.ts, "orchestrate_run")
        run = await stack.services.ledger.runs.get_run(run_id)
    assert any("Review by" in r.text for r in replies)
    assert run is not None and run.question == f"{QUESTION} soon \ufffd"


def contextlib_for(backend: str, tmp: Path) -> Any:
    if backend == "postgres":
        return fresh_postgres_schema()
    return contextlib.nullcontext(f"sqlite:///{tmp / 'ledger.db'}")


async def test_a_what_was_wrong_answer_the_ledger_cannot_take_stays_in_its_modal(
    tmp_path: Path,
) -> None:
    async with (
        full_disk_outage(tmp_path) as (url, fail, recover),
        running_stack(tmp_path, database_url=url) as stack,
    ):
        await stack.command(QUESTION)
        await stack.settle()
        _, replies = stack.thread()
        review = next(r for r in replies if "orchestrate_feedback" in json.dumps(r.blocks))
        await stack.slack.click(
            "C0GENERAL", review.ts, "orchestrate_feedback", user_id="U0BOB", choice="negative"
        )
        await until(lambda: bool(stack.slack.open_modals("U0BOB")))
        (modal,) = stack.slack.open_modals("U0BOB")
        await fail()
        refused = await stack.slack.submit_modal(modal.id, {"what_was_wrong": "No pagination."})
        await recover()
        saved = await stack.slack.submit_modal(modal.id, {"what_was_wrong": "No pagination."})
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            kept = db.execute("SELECT user_id, vote, reason FROM votes").fetchall()
    assert refused.outcome == "errors"
    assert "cannot reach its ledger" in refused.errors["what_was_wrong"]
    assert saved.outcome == "closed"
    assert kept == [("U0BOB", -1, "No pagination.")]
