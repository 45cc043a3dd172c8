"""What a fresh clone and an installed wheel need: nothing machine-local tracked in git, and
every file the installed commands read at run time shipped inside the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tracked_links() -> list[tuple[str, str]]:
    """(path, target) of every symbolic link git tracks (mode 120000)."""
    listing = subprocess.run(
        ["git", "ls-files", "-s", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout
    links = []
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        if meta.startswith("120000 "):
            links.append((path, os.readlink(ROOT / path)))
    return links


def test_git_tracks_no_symbolic_link() -> None:
    """A link is machine-local (an absolute target, or a checkout on a system without links
    gets a text file): nothing tracked may be one."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an installed copy of the tests)")
    assert tracked_links() == []


def test_the_packaged_manifest_is_the_top_level_one() -> None:
    """The Slack sandbox reads the package's copy; people paste the top-level file."""
    packaged = ROOT / "bot" / "sandbox" / "slack" / "manifest.yml"
    assert packaged.read_bytes() == (ROOT / "manifest.yml").read_bytes(), (
        "copy manifest.yml to bot/sandbox/slack/manifest.yml"
    )


def test_the_venv_paths_are_ignored_whatever_they_are() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = [".venv", ".venv-main", ".venv-py312", ".ci-venv"]
    checked = subprocess.run(
        ["git", "check-ignore", "--no-index", *names], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert checked == names


@pytest.mark.timeout(600)
def test_the_built_wheel_installed_alone_runs_the_demo_from_another_directory(
    tmp_path: Path,
) -> None:
    """`pip install .` (no -e) then the demo, far from the checkout: the manifest, prices and
    everything else read at run time must come from the installed package."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is a dev dependency: install from requirements.lock")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("orchestrate-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert {"bot/web/static/app.css", "bot/web/static/app.js"} <= shipped  # the web view's
    venv = tmp_path / "venv"
    subprocess.run(
        [uv, "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True
    )
    python = venv / "bin" / "python"
    install = [uv, "pip", "install", "--python", str(python)]
    subprocess.run(
        [*install, "--require-hashes", "-r", str(ROOT / "requirements.lock")],
        check=True,
        capture_output=True,
    )
    subprocess.run([*install, "--no-deps", str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_"))}
    env.pop("PYTHONPATH", None)
    demo = subprocess.run(
        [
            str(venv / "bin" / "orchestrate-bot"),
            "demo",
            "--time-scale",
            "0.05",
            "Design a REST API for a social network",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Sonnet" in demo.stdout and "$" in demo.stdout
    where = subprocess.run(
        [str(python), "-c", "import bot, sys; sys.stdout.write(bot.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages" in where, f"the demo ran the checkout, not the wheel: {where}"
    # `orchestrate-bot eval starter` reads its questions from the package too.
    starter = subprocess.run(
        [
            str(python),
            "-c",
            "from bot.cli.eval.questions import load_questions as q;"
            "print(len(q('starter', max_chars=2000)))",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert starter.strip() == "20"
