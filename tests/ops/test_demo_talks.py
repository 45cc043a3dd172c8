"""The demo as a newcomer runs it: its exit status says whether the run finished, Ctrl-C
says what was spent, a time scale that is not positive is refused, and `--web-port` prints
the run's web link and serves it."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.cli.test_cli import QUESTION, clean_env, run_cli
from tests.ports import free_port


def from_a_terminal() -> None:
    """Start the demo with Ctrl-C's default action, as a shell in a terminal does. A suite
    run in the background by a shell without job control (`pytest ... &` in a script)
    ignores SIGINT, its children inherit that, and Python then never turns Ctrl-C into
    KeyboardInterrupt: the demo would run to its end and these tests would fail for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_demo_exits_1_when_the_run_failed(tmp_path: Path) -> None:
    # Every call times out at once: the plan never comes, so the run fails.
    env = clean_env(tmp_path, ORCHESTRATE_CALL_TIMEOUT_S="0.001")
    result = run_cli("demo", QUESTION, "--time-scale", "0.02", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "fast"])
def test_a_time_scale_that_is_not_positive_is_refused(tmp_path: Path, scale: str) -> None:
    result = run_cli("demo", QUESTION, "--time-scale", scale, env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "--time-scale: must be a positive number" in result.stderr


async def test_ctrl_c_says_what_was_spent(tmp_path: Path) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", QUESTION, "--time-scale", "3",
        env=clean_env(tmp_path), cwd=tmp_path, preexec_fn=from_a_terminal,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert demo.stdout is not None
    # Started, and the plan's call under way (a fixed sleep was too short under load).
    await read_until(demo.stdout, "[in_progress] Opus: strategy", [])
    demo.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(demo.communicate(), 60)
    stderr = err.decode()
    assert demo.returncode == 130, stderr
    assert "orchestrate-bot demo: interrupted; $" in stderr and "spent so far" in stderr


async def read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    """Collect stdout lines into `seen` until one contains `marker`."""
    async with asyncio.timeout(90):
        while not seen or marker not in seen[-1]:
            line = await stream.readline()
            assert line, f"stdout ended before {marker!r}:\n" + "".join(seen)
            seen.append(line.decode())


async def test_the_demo_prints_the_thread_as_it_happens(tmp_path: Path) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", QUESTION, "--time-scale", "1",
        env=clean_env(tmp_path), cwd=tmp_path, preexec_fn=from_a_terminal,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert demo.stdout is not None
    seen: list[str] = []
    # The first example is on screen while the review is still being written: interrupting
    # then leaves the strategy and the example printed, in that order, and no review.
    await read_until(demo.stdout, "Illustrated by Haiku", seen)
    demo.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(demo.communicate(), 60)
    assert demo.returncode == 130, err.decode()
    out = "".join(seen) + rest.decode()
    assert out.startswith("#general\n")
    assert out.index("*1. ") < out.index("*1/") < out.index("Illustrated by Haiku")
    assert "Reviewed by Sonnet" not in out


def test_the_demo_thread_reads_strategy_then_examples_then_review(tmp_path: Path) -> None:
    result = run_cli(
        "demo", QUESTION, "--time-scale", "0.05", env=clean_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    strategy = out.index("*Strategy · Opus*")
    examples = [out.index(f"*{n}/3 · ") for n in (1, 2, 3)]
    assert strategy < min(examples) and max(examples) < out.index("Reviewed by Sonnet")
    assert out.index("Reviewed by Sonnet") < out.index("✅ Done in")
    assert out.count("Illustrated by Haiku") == 3  # each example printed once


async def test_the_demo_prints_the_runs_web_link_and_serves_it_until_ctrl_c(
    tmp_path: Path,
) -> None:
    port = free_port()
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", QUESTION, "--time-scale", "0.02",
        "--web-port", str(port), env=clean_env(tmp_path), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert demo.stdout is not None
    seen: list[str] = []
    await read_until(demo.stdout, "Open the run in a browser", seen)
    link = re.search(r"http://127\.0\.0\.1:\d+/runs/[0-9a-f-]+", seen[-1])
    assert link, seen[-1]
    async with aiohttp.ClientSession() as session:
        async with session.get(link.group(0), allow_redirects=False) as page:
            assert page.status == 302  # a stranger is sent to sign in, and sees nothing
            assert page.headers["Location"].startswith("/login?next=")
        async with session.get(link.group(0)) as sign_in:  # on to the sandbox's page
            assert "Sign in to" in await sign_in.text() and "Alice" in await sign_in.text()
    demo.send_signal(signal.SIGINT)
    await asyncio.wait_for(demo.communicate(), 60)
    assert demo.returncode == 0  # the run finished; Ctrl-C only ends the serving
