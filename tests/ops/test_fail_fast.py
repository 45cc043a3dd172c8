"""Start-up as an operator meets it: each refused dependency stops `serve` with exit 2 and
one line naming the variable and the fix, no traceback; a dependency that is only away is
waited for while `/healthz` says so. Every case runs the real command as a process."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox
from tests.cli.test_cli import clean_env
from tests.ports import free_port

EXIT_TIMEOUT_S = 60


@dataclass
class Ended:
    code: int
    stderr: str

    @property
    def last_line(self) -> str:
        return self.stderr.strip().splitlines()[-1]


@asynccontextmanager
async def sandboxes() -> AsyncIterator[tuple[SlackSandbox, ClaudeSandbox]]:
    async with (
        SlackSandbox() as slack,
        ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as claude,
    ):
        yield slack, claude


def stack_env(
    tmp_path: Path, slack: SlackSandbox, claude: ClaudeSandbox, **extra: str
) -> dict[str, str]:
    stack = {
        "SLACK_API_URL": slack.api_url,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "ANTHROPIC_API_KEY": claude.api_key,
    }
    return clean_env(tmp_path, **(stack | extra))


async def start(
    env: dict[str, str], *args: str, cwd: Path, python: tuple[str, ...] = ()
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *(python or ("-m", "bot")),
        "serve",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def serve_until_exit(
    env: dict[str, str], *args: str, cwd: Path, **kw: tuple[str, ...]
) -> Ended:
    process = await start(env, *args, cwd=cwd, **kw)
    try:
        _, err = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Ended(process.returncode, err.decode())


def assert_one_line_failure(ended: Ended, *expected: str) -> None:
    assert ended.code == 2, ended.stderr
    assert "Traceback" not in ended.stderr, ended.stderr
    # The refusal alone: the INFO lines of a start-up that did not happen are not written.
    assert ended.stderr.strip() == ended.last_line, ended.stderr
    assert ended.last_line.startswith("orchestrate-bot: "), ended.stderr
    for words in expected:
        assert words in ended.last_line, ended.stderr


HTTP = ("--http", "--host", "127.0.0.1")


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_refused_bot_token_stops_serve_in_one_line(tmp_path: Path, mode: str) -> None:
    async with sandboxes() as (slack, claude):
        env = stack_env(tmp_path, slack, claude, SLACK_BOT_TOKEN="xoxb-not-the-token")
        args = (*HTTP, "--port", str(free_port())) if mode == "http" else ()
        ended = await serve_until_exit(env, *args, cwd=tmp_path)
    assert_one_line_failure(ended, "SLACK_BOT_TOKEN", "invalid_auth", "OAuth & Permissions")
    assert "xoxb-not-the-token" not in ended.stderr


async def test_a_refused_app_token_stops_socket_mode_in_one_line(tmp_path: Path) -> None:
    async with sandboxes() as (slack, claude):
        env = stack_env(tmp_path, slack, claude, SLACK_APP_TOKEN="xapp-not-the-token")
        ended = await serve_until_exit(env, cwd=tmp_path)
    assert_one_line_failure(ended, "SLACK_APP_TOKEN", "invalid_auth", "connections:write")


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_refused_anthropic_key_stops_serve_in_one_line(tmp_path: Path, mode: str) -> None:
    async with sandboxes() as (slack, claude):
        env = stack_env(tmp_path, slack, claude, ANTHROPIC_API_KEY="sk-ant-wrong")
        args = (*HTTP, "--port", str(free_port())) if mode == "http" else ()
        ended = await serve_until_exit(env, *args, cwd=tmp_path)
        assert claude.messages() == []  # found at start, not by the first user
    assert_one_line_failure(ended, "ANTHROPIC_API_KEY", "401")


async def test_an_unknown_model_stops_serve_naming_its_variable(tmp_path: Path) -> None:
    async with sandboxes() as (slack, claude):
        env = stack_env(tmp_path, slack, claude, EXAMPLES_MODEL="claude-haiku-9-9")
        ended = await serve_until_exit(env, cwd=tmp_path)
    assert_one_line_failure(ended, "EXAMPLES_MODEL", '"claude-haiku-9-9"')


async def test_an_unreachable_database_stops_serve_in_one_line(tmp_path: Path) -> None:
    async with sandboxes() as (slack, claude):
        url = f"postgresql://orchestrate:hunter2-secret@127.0.0.1:{free_port()}/ledger"
        env = stack_env(tmp_path, slack, claude, DATABASE_URL=url)
        ended = await serve_until_exit(env, cwd=tmp_path)
    assert_one_line_failure(ended, "DATABASE_URL", "could not connect", "127.0.0.1")
    assert "hunter2-secret" not in ended.stderr


async def test_a_missing_postgres_driver_says_what_to_install(tmp_path: Path) -> None:
    # `sys.modules[name] = None` is how Python itself reports a module as not installed.
    without_asyncpg = (
        "-c",
        "import sys; sys.modules['asyncpg'] = None; sys.argv[0] = 'orchestrate-bot'; "
        "from bot.__main__ import main; sys.exit(main(sys.argv[1:]))",
    )
    async with sandboxes() as (slack, claude):
        env = stack_env(tmp_path, slack, claude, DATABASE_URL="postgresql://u@127.0.0.1/db")
        ended = await serve_until_exit(env, cwd=tmp_path, python=without_asyncpg)
    assert_one_line_failure(ended, "DATABASE_URL", "pip install 'orchestrate[postgres]'")


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_port_in_use_stops_serve_in_one_line(tmp_path: Path, mode: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        async with sandboxes() as (slack, claude):
            env = stack_env(tmp_path, slack, claude)
            if mode == "http":
                ended = await serve_until_exit(env, *HTTP, "--port", port, cwd=tmp_path)
            else:
                env["METRICS_PORT"] = port
                ended = await serve_until_exit(env, "--host", "127.0.0.1", cwd=tmp_path)
    name = "--port" if mode == "http" else "METRICS_PORT"
    assert_one_line_failure(ended, f"{name} {port}", "already in use")


async def test_a_malformed_setting_reads_as_plain_words(tmp_path: Path) -> None:
    env = clean_env(tmp_path, BUDGET_USER_DAILY_USD="abc")
    ended = await serve_until_exit(env, cwd=tmp_path)
    assert ended.code == 2
    assert ended.stderr.strip() == (
        'orchestrate-bot: BUDGET_USER_DAILY_USD must be a positive number of dollars, got "abc"'
    )


async def readyz(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def until_status(url: str, status: int, *, within_s: float = 30) -> dict[str, object]:
    async with asyncio.timeout(within_s):
        while True:
            try:
                got, body = await readyz(url)
                if got == status:
                    return body
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def test_an_unreachable_claude_api_is_waited_for_while_healthz_says_so(
    tmp_path: Path,
) -> None:
    claude_port = free_port()
    async with SlackSandbox() as slack:
        metrics_port = free_port()
        env = clean_env(
            tmp_path,
            SLACK_API_URL=slack.api_url,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_APP_TOKEN=slack.app_token,
            ANTHROPIC_BASE_URL=f"http://127.0.0.1:{claude_port}",
            ANTHROPIC_API_KEY="sk-ant-sandbox",
            ANTHROPIC_MAX_RETRIES="0",
            METRICS_PORT=str(metrics_port),
        )
        bot = await start(env, "--host", "127.0.0.1", cwd=tmp_path)
        try:
            healthz = f"http://127.0.0.1:{metrics_port}/healthz"
            waiting = await until_status(healthz, 503)
            assert "Claude API" in str(waiting["start-up"])
            async with ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as claude:
                await claude.stop()
                await claude.start(port=claude_port)
                await slack.wait_connected(timeout=60)
                assert (await until_status(healthz, 200))["ok"] is True
        finally:
            bot.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(bot.communicate(), 30)
    stderr = err.decode()
    assert bot.returncode == 0, stderr
    assert "WARNING bot.startup: the Claude API did not answer; retrying" in stderr
    assert "Traceback" not in stderr


async def test_an_unreachable_slack_is_named_at_once_and_retried_when_the_warning_says(
    tmp_path: Path,
) -> None:
    slack_port, metrics_port = free_port(), free_port()
    slack = SlackSandbox()  # started later, on the port the bot was told
    async with ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as claude:
        env = clean_env(
            tmp_path,
            SLACK_API_URL=f"http://127.0.0.1:{slack_port}/api/",
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_APP_TOKEN=slack.app_token,
            ANTHROPIC_BASE_URL=claude.base_url,
            ANTHROPIC_API_KEY=claude.api_key,
            METRICS_PORT=str(metrics_port),
        )
        bot = await start(env, "--host", "127.0.0.1", cwd=tmp_path)
        assert bot.stderr is not None
        try:
            warnings: list[tuple[float, str]] = []
            # Three tries' warnings, each logged as its try fails (not after a minute of
            # retries underneath), each next try coming when the one before said.
            async with asyncio.timeout(45):
                while len(warnings) < 3:
                    line = (await bot.stderr.readline()).decode()
                    if "WARNING bot.startup" in line:
                        warnings.append((asyncio.get_running_loop().time(), line))
            readyz = f"http://127.0.0.1:{metrics_port}/readyz"
            waiting = str((await until_status(readyz, 503))["start-up"])
            await slack.start(port=slack_port)
            await slack.wait_connected(timeout=60)
            assert (await until_status(readyz, 200))["ok"] is True
        finally:
            bot.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(bot.communicate(), 30)
            await slack.stop()
    lines = [line for _, line in warnings]
    assert all("Slack did not answer; retrying in" in line for line in lines), lines
    assert "dependency=Slack" in lines[0] and "Slack could not be reached" in lines[0]
    assert ["retry_in_s=1.0" in lines[0], "retry_in_s=2.0" in lines[1]] == [True, True]
    first_gap, second_gap = warnings[1][0] - warnings[0][0], warnings[2][0] - warnings[1][0]
    assert 0.9 <= first_gap < 1.0 + 5, first_gap
    assert 1.9 <= second_gap < 2.0 + 5, second_gap
    assert waiting.startswith("waiting for Slack: Slack could not be reached"), waiting
    assert "next try at" in waiting
    assert bot.returncode == 0
    stderr = "".join(lines) + rest.decode()
    assert "connected to Slack in Socket Mode" in stderr
    assert "token will be unused" not in stderr  # Bolt's warning, at every start before
    assert "Traceback" not in stderr
