"""No person's text in a log line at INFO or above, whatever fails on the way.

A distinctive question goes through the mention path (a run in a channel, then a follow-up
in its thread) while the ledger is down and while Slack refuses the bot's posts; every record
the process writes at INFO or above, from any logger, is rendered as the log file would show
it (message, fields and traceback, by the project's own formatter) and must not contain a
word of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.logs import TextFormatter
from tests.harness import Mode, Stack, running_stack
from tests.ledger.throwaway_pg import throwaway_postgres
from tests.slack.test_conversations import a_finished_run, mention, until

# Words no code, library or stand-in would write by itself.
SECRET_WORDS = ("Quokkafjord", "zebracorn", "Mxyzptlk")
QUESTION = "Quokkafjord: how should the zebracorn team ship Mxyzptlk?\x00 \ud83d"
FOLLOW_UP = "what about zebracorn auth for Quokkafjord?"


def leaked(records: list[logging.LogRecord]) -> list[str]:
    formatter = TextFormatter([])
    lines = [formatter.format(r) for r in records if r.levelno >= logging.INFO]
    return [line for line in lines if any(w.lower() in line.lower() for w in SECRET_WORDS)]


@asynccontextmanager
async def on_postgres(tmp: Path, mode: Mode) -> AsyncIterator[tuple[Stack, object]]:
    async with (
        throwaway_postgres() as pg,
        running_stack(tmp, mode=mode, database_url=pg.url) as stack,
    ):
        yield stack, pg


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_question_never_reaches_a_log_line_while_the_ledger_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: Mode
) -> None:
    caplog.set_level(logging.INFO)
    async with on_postgres(tmp_path, mode) as (stack, pg):
        asked = await mention(stack, QUESTION)  # its NUL and surrogate cannot be stored
        await until(lambda: answered(stack) >= 1)
        await stack.services.runs.wait_idle()
        await pg.stop()  # type: ignore[attr-defined]
        await mention(stack, QUESTION)
        await mention(stack, FOLLOW_UP, thread_ts=asked.ts)
        await until(lambda: len(stack.slack.ephemerals("U0ALICE")) >= 2)
        await stack.services.runs.wait_idle()
        await pg.start()  # type: ignore[attr-defined]
    assert leaked(caplog.records) == []


def answered(stack: Stack) -> int:
    """Runs admitted, and private answers (a refusal, an apology)."""
    return stack.services.runs.admitted + len(stack.slack.ephemerals("U0ALICE"))


async def test_a_question_never_reaches_a_log_line_when_slack_refuses_the_bot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_stack(tmp_path) as stack:
        root = await a_finished_run(stack)
        # Every post and edit refused, the private answers too, for a question and a follow-up.
        for method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            stack.slack.fail_next(method, error="invalid_blocks", times=50)
        await mention(stack, QUESTION)
        await mention(stack, FOLLOW_UP, thread_ts=root)
        await mention(stack, "x" * 3_000 + " zebracorn")  # over the limit: given back
        await asyncio.sleep(1.0)
        await stack.services.runs.wait_idle()
    assert leaked(caplog.records) == []
