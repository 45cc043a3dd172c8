"""Frictions a newcomer and an operator met, each checked through the real command: a
process started as a person would start it, its exit status and what it printed."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp

from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import open_ledger
from bot.sandbox.slack.payloads import signature_headers
from tests.cli.test_cli import QUESTION, clean_env, run_cli
from tests.ports import free_port

PYTHON_CLI = (sys.executable, "-m", "bot")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- the command line itself -----------------------------------------------------------


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run_cli("--version", env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"orchestrate-bot {version('orchestrate')}"


def test_sandbox_help_shows_every_default(tmp_path: Path) -> None:
    result = run_cli("sandbox", "--help", env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for default in ("(default: 8765)", "(default: 8766)", "(default: 1.0)"):
        assert default in text, result.stdout


def test_serve_help_documents_host_and_what_port_is_for(tmp_path: Path) -> None:
    result = run_cli("serve", "--help", env=clean_env(tmp_path), cwd=tmp_path)
    text = " ".join(result.stdout.split())
    assert "default 0.0.0.0, every interface" in text and "METRICS_PORT" in text
    assert "only with --http" in text


def test_serve_port_without_http_is_refused_in_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", "--port", "9000", env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("orchestrate-bot serve: --port is HTTP mode's port and needs --http")
    assert "METRICS_PORT" in line


def test_an_unquoted_demo_question_is_joined_into_one(tmp_path: Path) -> None:
    # The length check sees the joined question: 9 words of QUESTION, one question.
    env = clean_env(tmp_path, ORCHESTRATE_MAX_QUESTION_CHARS="10")
    result = run_cli("demo", *QUESTION.split(), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert f"the question is {len(QUESTION)} characters" in one_line(result.stderr)


def test_the_unquoted_demo_runs_the_whole_question(tmp_path: Path) -> None:
    result = run_cli(
        "demo", *QUESTION.split(), "--time-scale", "0.02", env=clean_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "Reviewed by Sonnet" in result.stdout


# -- settings at start ---------------------------------------------------------------------


def test_a_progress_switch_that_is_neither_on_nor_off_says_on_or_off(tmp_path: Path) -> None:
    result = run_cli("costs", env=clean_env(tmp_path, ORCHESTRATE_PROGRESS="maybe"), cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        'orchestrate-bot: ORCHESTRATE_PROGRESS must be on or off, got "maybe"'
    )


def test_a_secret_too_short_to_be_real_is_refused_naming_it(tmp_path: Path) -> None:
    result = run_cli("serve", env=clean_env(tmp_path, SLACK_SIGNING_SECRET="e"), cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("orchestrate-bot: SLACK_SIGNING_SECRET is 1 character long, too short")


# -- costs -------------------------------------------------------------------------------


def test_costs_against_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ledger.db"
    (tmp_path / "nowhere").mkdir()
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{missing}")
    result = run_cli("costs", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert f"there is no ledger at {missing}" in one_line(result.stderr)
    assert result.stdout == ""
    assert list((tmp_path / "nowhere").iterdir()) == []  # no empty ledger, no spill file


async def _ledger_with_calls(path: Path, calls: int) -> None:
    now = datetime.now(UTC)
    async with open_ledger(f"sqlite:///{path}") as ledger:
        run_id = await ledger.runs.start_run(
            team_id="T1", channel_id="C1", user_id="U1", question="q", now=now
        )
        for _ in range(calls):
            await ledger.runs.record_call(
                run_id,
                CallRecord(
                    role="example",
                    model="claude-haiku-5-5",
                    usage=TokenUsage(input_tokens=1_000, output_tokens=2_000),
                    cost_usd=Decimal("0.0003"),
                    latency_s=1.0,
                    outcome="ok",
                ),
                now=now,
            )


def test_costs_csv_into_head_exits_quietly_when_head_has_read_enough(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    asyncio.run(_ledger_with_calls(db, 3000))  # far more than a pipe's buffer holds
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{db}")
    shell = f'{sys.executable} -m bot costs --csv | head -1; echo "status ${{PIPESTATUS[0]}}"'
    result = subprocess.run(
        ["bash", "-c", shell], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.splitlines()[0].startswith("call_id,created_at,run_id")
    assert result.stdout.splitlines()[-1] == "status 141"  # what `cat` gives: SIGPIPE's status
    assert result.stderr == ""  # no "SQLite cannot write … Broken pipe", no traceback


def test_a_range_running_past_today_is_counted_to_now(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    asyncio.run(_ledger_with_calls(db, 1))
    first = date.today().replace(day=1)
    last = first + timedelta(days=40)
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{db}")
    result = run_cli("costs", f"{first}..{last}", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 calls" in result.stdout and "$0.0003" in result.stdout
    twice = run_cli("costs", "month", "--since", "week", env=env, cwd=tmp_path)
    assert twice.returncode == 2 and "give the period once" in one_line(twice.stderr)


# -- the sandbox command ---------------------------------------------------------------------


def test_the_sandbox_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli(
            "sandbox", "--slack-port", port, "--claude-port", str(free_port()),
            env=clean_env(tmp_path), cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"orchestrate-bot sandbox: --slack-port {port}: the port is already in use; stop what "
        "listens there or choose another port with --slack-port."
    )


async def test_the_sandbox_delivers_a_slash_command_to_an_http_mode_bot(tmp_path: Path) -> None:
    slack_port, claude_port, bot_port = free_port(), free_port(), free_port()
    events_url = f"http://127.0.0.1:{bot_port}/slack/events"
    sandbox = await asyncio.create_subprocess_exec(
        *PYTHON_CLI, "sandbox", "--slack-port", str(slack_port),
        "--claude-port", str(claude_port), "--time-scale", "0.02", "--events-url", events_url,
        env=clean_env(tmp_path), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    bot: asyncio.subprocess.Process | None = None
    try:
        assert sandbox.stdout is not None
        banner = await _banner(sandbox.stdout)
        secret = _after(banner, "Signing secret:")
        slack_api = f"http://127.0.0.1:{slack_port}"
        env = clean_env(
            tmp_path,
            SLACK_API_URL=f"{slack_api}/api/",
            SLACK_BOT_TOKEN="xoxb-sandbox",
            SLACK_SIGNING_SECRET=secret,
            ANTHROPIC_BASE_URL=f"http://127.0.0.1:{claude_port}",
            ANTHROPIC_API_KEY="sk-ant-sandbox",
            ORCHESTRATE_SLACK_POSTS_PER_S="50",
        )
        bot = await asyncio.create_subprocess_exec(
            *PYTHON_CLI, "serve", "--http", "--host", "127.0.0.1", "--port", str(bot_port),
            env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with aiohttp.ClientSession() as session:
            await _until_ready(session, f"http://127.0.0.1:{bot_port}/readyz")
            # What Slack sends to the events URL manifest.http.yml names, before anything else.
            challenge = json.dumps({"type": "url_verification", "challenge": "c-42", "token": "t"})
            headers = signature_headers(challenge, secret=secret, content_type="application/json")
            async with session.post(events_url, data=challenge, headers=headers) as response:
                verified = (response.status, await response.json())
            async with session.post(
                f"{slack_api}/_sandbox/slash", json={"text": "Design a REST API"}
            ) as response:
                ack = await response.json()
            channel = f"{slack_api}/_sandbox/transcript/C0GENERAL"
            transcript = await _until_reviewed(session, channel)
    finally:
        for process in (bot, sandbox):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 30)
    assert verified == (200, {"challenge": "c-42"})
    assert ack["ok"] is True and ack["status"] == 200 and ack["url"] == events_url
    assert "Strategy · Opus" in transcript and "Reviewed by Sonnet" in transcript


async def _banner(stdout: asyncio.StreamReader) -> str:
    lines = []
    async with asyncio.timeout(60):
        while not (line := (await stdout.readline()).decode()).startswith("Ctrl-C"):
            lines.append(line)
    return "".join(lines)


def _after(text: str, label: str) -> str:
    line = next(line for line in text.splitlines() if line.startswith(label))
    return line.removeprefix(label).split()[0]


async def _until_ready(session: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(60):
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def _until_reviewed(session: aiohttp.ClientSession, url: str) -> str:
    async with asyncio.timeout(60):
        while True:
            async with session.get(url) as response:
                text = await response.text()
            if "Reviewed by Sonnet" in text:
                return text
            await asyncio.sleep(0.2)


# -- the demo's ends -----------------------------------------------------------------------


def test_demo_live_without_a_reachable_api_stops_after_a_bounded_wait(tmp_path: Path) -> None:
    # The demo's patience (30 s) made 3 s, so the test is short; everything else is the
    # command as a person runs it.
    patient = (
        "-c",
        "import sys; import bot.cli.demo as d; d.START_PATIENCE_S = 3.0; "
        "from bot.__main__ import main; sys.exit(main(sys.argv[1:]))",
    )
    env = clean_env(
        tmp_path,
        ANTHROPIC_API_KEY="sk-ant-real-looking-key",
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens: no network
        ANTHROPIC_MAX_RETRIES="0",
    )
    started = datetime.now(UTC)
    result = subprocess.run(
        [sys.executable, *patient, "demo", "--live", QUESTION],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    took = (datetime.now(UTC) - started).total_seconds()
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("orchestrate-bot demo: the Claude API could not be reached"), last
    assert "gave up after" in last and "check the network and ANTHROPIC_BASE_URL" in last
    assert "Traceback" not in result.stderr
    assert took < 60


async def test_sigterm_to_the_demo_says_what_it_did_and_exits_143(tmp_path: Path) -> None:
    demo = await asyncio.create_subprocess_exec(
        *PYTHON_CLI, "demo", QUESTION, "--time-scale", "2",
        env=clean_env(tmp_path), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert demo.stdout is not None
    async with asyncio.timeout(60):
        while "[in_progress] Opus: strategy" not in (await demo.stdout.readline()).decode():
            pass
    demo.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(demo.communicate(), 60)
    stderr = err.decode()
    assert demo.returncode == 143, stderr
    assert "received SIGTERM; stopping" in stderr
    assert "orchestrate-bot demo: interrupted; $" in stderr and "spent so far" in stderr
    assert "it is paused in its thread" in stderr
    assert "Traceback" not in stderr
