"""The `orchestrate-bot` command as an operator meets it, run as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from bot.sandbox.slack import SlackSandbox

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_http_mode_serves_healthz_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with SlackSandbox() as slack:
        port = free_port()
        env = clean_env(
            tmp_path,
            SLACK_API_URL=slack.api_url,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=slack.signing_secret,
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
            code = await asyncio.wait_for(bot.wait(), 30)
    assert status == 200
    assert code == 0


async def _healthz(url: str) -> int:
    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    return response.status
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
