"""What a real `orchestrate-bot serve --http` process writes to its log, flooded and at DEBUG.

A flood of unsigned 1 MiB posts grows the log by at most one short line each, and a whole
run at DEBUG leaves no question text, response_url or token in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox
from tests.cli.test_cli import clean_env
from tests.ports import free_port

MARKER = "Zanzibar-quokka-7731"  # unmistakable in a log
QUESTION = f"Design a REST API for {MARKER}"
FLOOD = 20
MIB = 1024 * 1024
FORM = "application/x-www-form-urlencoded"  # as Slack posts commands (anything else: 415)


@dataclass
class Served:
    slack: SlackSandbox
    url: str
    lines: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def served_at_debug(tmp_path: Path) -> AsyncIterator[Served]:
    async with (
        SlackSandbox() as slack,
        ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as claude,
    ):
        port = free_port()
        env = clean_env(
            tmp_path,
            LOG_LEVEL="DEBUG",
            SLACK_API_URL=slack.api_url,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=slack.signing_secret,
            ANTHROPIC_BASE_URL=claude.base_url,
            ANTHROPIC_API_KEY=claude.api_key,
            ORCHESTRATE_SLACK_POSTS_PER_S="50",
        )
        bot = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot", "serve", "--http", "--host", "127.0.0.1"),
            *("--port", str(port)),
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        served = Served(slack, f"http://127.0.0.1:{port}")
        reader = asyncio.create_task(_read_lines(bot, served.lines))
        try:
            await _wait_healthy(f"{served.url}/healthz")
            yield served
        finally:
            if bot.returncode is None:
                bot.send_signal(signal.SIGTERM)
            await asyncio.wait_for(bot.wait(), 30)
            await reader


async def _read_lines(bot: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert bot.stderr is not None
    async for line in bot.stderr:
        lines.append(line.decode(errors="replace"))


async def _wait_healthy(url: str) -> None:
    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def _settled(lines: list[str]) -> int:
    """The log's length once nothing has been added for a moment."""
    count = -1
    while count != len(lines):
        count = len(lines)
        await asyncio.sleep(0.3)
    return count


async def test_a_flood_of_unsigned_1_mib_posts_adds_at_most_one_short_line_each(
    tmp_path: Path,
) -> None:
    async with served_at_debug(tmp_path) as served:
        before = await _settled(served.lines)
        body = b"payload=" + b"A" * (MIB - len(b"payload="))
        async with aiohttp.ClientSession() as session:
            for _ in range(FLOOD):
                async with session.post(
                    f"{served.url}/slack/events", data=body, headers={"Content-Type": FORM}
                ) as response:
                    assert response.status == 401
        added = served.lines[before : await _settled(served.lines)]
    assert 0 < len(added) <= FLOOD
    assert all(len(line) < 300 and "AAAA" not in line for line in added)
    assert all("refused a request" in line and "bytes from" in line for line in added)


async def test_a_whole_run_at_debug_logs_no_question_response_url_or_token(
    tmp_path: Path,
) -> None:
    async with served_at_debug(tmp_path) as served:
        status, _, _ = await served.slack.post_slash_command_http(
            f"{served.url}/slack/events", text=QUESTION
        )
        async with asyncio.timeout(60):
            while not _reviewed(served.slack):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        response_url = served.slack.response_urls.base
    log = "".join(served.lines)
    assert status == 200
    assert "DEBUG" in log  # DEBUG was on: the test would prove nothing otherwise
    assert MARKER not in log
    assert f"{response_url}/commands/" not in log
    assert "xoxb-sandbox" not in log and "sk-ant-sandbox" not in log


def _reviewed(slack: SlackSandbox) -> bool:
    tops = slack.messages("C0GENERAL")
    return bool(tops) and "Done in" in str(tops[-1].blocks)
