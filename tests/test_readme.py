"""The README's promises: its sandbox script runs against the stand-ins as written."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    blocks = re.findall(r"```(?:python|sh)\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if marker in b)


async def test_the_sandbox_script_in_the_readme_drives_both_stand_ins(tmp_path: Path) -> None:
    script = tmp_path / "sandbox_tour.py"
    script.write_text(readme_block("sandbox_tour.py"))
    async with SlackSandbox() as slack, ClaudeSandbox(latency=LatencyModel(time_scale=0)) as claude:
        env = os.environ | {"ANTHROPIC_BASE_URL": claude.base_url, "SLACK_API_URL": slack.api_url}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        posted = slack.messages("C0GENERAL")
    assert len(posted) == 1 and "Pagination" in posted[0].text
    assert "U0BOT" in out.decode()


def test_the_first_two_commands_install_and_demo_then_test() -> None:
    first, second = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)[:2]
    assert "\n" not in first.strip(), "the first command is one line a person pastes"
    assert "--require-hashes -r requirements.lock" in first and "orchestrate-bot demo" in first
    assert "pytest" in second
    ci = (README.parent / ".ci" / "run").read_text()
    assert "-m pytest" in ci


def test_ci_installs_from_the_same_lock_as_the_quick_start() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "--require-hashes -r requirements.lock" in ci
    assert '".[dev]"' not in ci, "CI must not resolve the dev tools afresh"
