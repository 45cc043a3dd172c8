"""The `orchestrate-bot` command as an operator meets it, run as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.sandbox.slack.server import SlackSandbox
from tests.ports import free_port

QUESTION = "Design a REST API for a social network"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "ANTHROPIC_", "BUDGET_", "ORCHESTRATE_", "DATABASE_URL"))
    }
    return env | {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"} | extra


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_demo_prints_the_whole_thread_and_exits_0(tmp_path: Path) -> None:
    result = run_cli(
        "demo", QUESTION, "--time-scale", "0.02", env=clean_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "#general" in out
    assert "Strategy · Opus" in out
    assert out.count("Illustrated by Haiku") >= 2
    assert "Reviewed by Sonnet" in out
    assert "all on Opus" in out and "Total $" in out
    # The progress message, shown as it changes while the run works, then closed.
    assert "[in_progress] Opus: strategy" in out and "[complete] Sonnet: review" in out
    assert out.index("[in_progress] Opus: strategy") < out.index("Illustrated by Haiku")
    assert "examples written." in out
    assert list(tmp_path.glob("*.db")) == []  # the demo's ledger is a throwaway


def test_the_demo_refuses_a_question_over_the_limit_on_stderr(tmp_path: Path) -> None:
    env = clean_env(tmp_path, ORCHESTRATE_MAX_QUESTION_CHARS="10")
    result = run_cli("demo", QUESTION, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "limit is 10" in result.stderr and result.stdout == ""


def test_serve_without_tokens_names_the_missing_variables(tmp_path: Path) -> None:
    result = run_cli("serve", env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN, SLACK_APP_TOKEN" in result.stderr
    http = run_cli("serve", "--http", "--port", "1", env=clean_env(tmp_path), cwd=tmp_path)
    assert "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET" in http.stderr


def test_a_malformed_setting_stops_the_command_with_its_name(tmp_path: Path) -> None:
    env = clean_env(tmp_path, BUDGET_USER_DAILY_USD="ten dollars")
    result = run_cli("costs", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "BUDGET_USER_DAILY_USD" in result.stderr


async def test_http_mode_serves_healthz_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    from bot.sandbox.claude.server import ClaudeSandbox

    async with SlackSandbox() as slack, ClaudeSandbox() as claude:
        port = free_port()
        env = clean_env(
            tmp_path,
            SLACK_API_URL=slack.api_url,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=slack.signing_secret,
            ANTHROPIC_BASE_URL=claude.base_url,
            ANTHROPIC_API_KEY=claude.api_key,
        )
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            "--http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            status = await _healthz(f"http://127.0.0.1:{port}/healthz")
        finally:
            bot.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(bot.communicate(), 30)
    assert status == 200
    assert bot.returncode == 0
    assert "ready: taking Slack events" in err.decode()
    assert "token will be unused" not in err.decode()  # Bolt's warning, at every start before


async def _healthz(url: str) -> int:
    """The health status once start-up has finished (503 while it checks its dependencies)."""
    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status != 503:
                        return response.status
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


@dataclass
class MidRun:
    """A real `orchestrate-bot serve` process, caught in the middle of a run."""

    slack: SlackSandbox
    env: dict[str, str]
    bot: asyncio.subprocess.Process
    claude: Any

    async def stderr(self) -> str:
        """What the bot wrote to stderr, once it has exited."""
        assert self.bot.stderr is not None
        return (await self.bot.stderr.read()).decode()


@contextlib.asynccontextmanager
async def bot_mid_run(tmp_path: Path, **extra_env: str) -> AsyncIterator[MidRun]:
    """Both sandboxes, a bot process in Socket Mode, and one run whose plan is recorded
    and whose examples hang: the moment to stop a bot and see what it keeps."""
    from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel

    async with (
        SlackSandbox() as slack,
        ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as claude,
    ):
        claude.add_rule(role="example", delay_s=60)
        env = clean_env(
            tmp_path,
            SLACK_API_URL=slack.api_url,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_APP_TOKEN=slack.app_token,
            ANTHROPIC_BASE_URL=claude.base_url,
            ANTHROPIC_API_KEY=claude.api_key,
            **extra_env,
        )
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,  # a few INFO lines: the pipe never fills
        )
        try:
            await slack.wait_connected(timeout=60)
            await slack.send_slash_command(text=QUESTION)
            async with asyncio.timeout(30):
                while sum(r.role == "example" for r in claude.requests) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            yield MidRun(slack, env, bot, claude)
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()


async def test_a_killed_bot_loses_no_recorded_call_and_its_run_finishes_at_restart(
    tmp_path: Path,
) -> None:
    """kill -9 mid-run, then the bot started again on the same ledger: it takes its own slot
    back and resumes the run where it was. The plan recorded before the kill is neither
    asked for nor paid again; the thread is finished, with no word of an interruption."""
    from datetime import UTC, datetime

    from bot.ledger import open_ledger
    from bot.services import open_services
    from bot.settings import Settings

    since = datetime(2000, 1, 1, tzinfo=UTC)
    async with bot_mid_run(tmp_path) as mid:
        mid.bot.kill()  # SIGKILL: no drain, no goodbye
        await mid.bot.wait()
        async with open_ledger(mid.env["DATABASE_URL"]) as ledger:
            before = await ledger.reports.summary("T0SANDBOX", since=since, until=datetime.now(UTC))
        statuses_before = run_statuses(tmp_path / "cli.db")
        mid.claude.clear_rules()  # the examples answer this time
        plans_before = sum(r.role == "plan" for r in mid.claude.requests)
        async with open_services(Settings.from_env(mid.env, dotenv=None)) as services:
            async with asyncio.timeout(30):
                while run_statuses(tmp_path / "cli.db") != ["finished"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            await services.runs.wait_idle()
            after = await services.ledger.reports.summary(
                "T0SANDBOX", since=since, until=datetime.now(UTC)
            )
        top = mid.slack.messages("C0GENERAL")[-1]
        replies = mid.slack.replies("C0GENERAL", top.ts)
    assert statuses_before == ["running"]
    assert before.calls == 1 and before.by_role[0].role == "plan"  # written when it returned
    assert sum(r.role == "plan" for r in mid.claude.requests) == plans_before == 1
    roles = {r.role: r.calls for r in after.by_role}
    assert roles["plan"] == 1 and roles["review"] == 1 and after.runs == 1
    assert not any("interrupted" in r.text.lower() for r in replies)
    assert "Reviewed by" in replies[-1].text + str(replies[-1].blocks)


async def test_sigterm_with_a_run_in_flight_pauses_it_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM lets runs finish within the grace period; what is still running is
    suspended (its calls in flight closed and recorded), left open for the restart, and
    its first message says it is paused. Nothing is rewritten as interrupted."""
    async with bot_mid_run(tmp_path, ORCHESTRATE_DRAIN_GRACE_S="0.5") as mid:
        mid.bot.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(mid.bot.wait(), 30)
        stderr = await mid.stderr()
        top = mid.slack.messages("C0GENERAL")[-1]
        replies = mid.slack.replies("C0GENERAL", top.ts)
    assert code == 0
    assert "draining: letting 1 run finish" in stderr
    assert "drained: 0 runs finished, 1 left to resume after the restart" in stderr
    assert not any("interrupted" in r.text.lower() for r in replies)
    assert "Paused while the bot restarts" in top.text + str(top.blocks)
    assert run_statuses(tmp_path / "cli.db") == ["running"]


def run_statuses(path: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT status FROM runs").fetchall()
    db.close()
    return [row[0] for row in rows]


async def test_the_sandbox_command_serves_both_stand_ins_until_interrupted(
    tmp_path: Path,
) -> None:
    slack_port, claude_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "sandbox",
        "--slack-port",
        str(slack_port),
        "--claude-port",
        str(claude_port),
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert f"http://127.0.0.1:{slack_port}/api/" in banner
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{claude_port}/v1/messages/count_tokens"
            body = {"model": "claude-haiku-5-5", "messages": [{"role": "user", "content": "hi"}]}
            headers = {"x-api-key": "sk-ant-sandbox", "anthropic-version": "2023-06-01"}
            async with session.post(url, json=body, headers=headers) as response:
                counted = await response.json()
            async with session.post(
                f"http://127.0.0.1:{slack_port}/api/auth.test",
                headers={"Authorization": "Bearer xoxb-sandbox"},
            ) as response:
                auth = await response.json()
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 30)
    assert counted["input_tokens"] > 0
    assert auth["ok"] is True
    assert code == 0
