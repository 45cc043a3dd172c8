"""A PostgreSQL cluster of the test's own, which a test may stop and start mid-run.

The shared test server (`DATABASE_URL_TEST_POSTGRES`) serves every test at once, so an
outage test cannot stop it. `throwaway_postgres()` builds a fresh cluster with the same
script CI uses (`.ci/postgres.sh`, in a directory of its own), yields a handle whose
`stop()` and `start()` take the server down and bring it back on the same port with its
data, and removes the cluster afterwards. Without PostgreSQL's binaries the test is skipped
with the reason (under CI=true it fails instead, as the conformance suite does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.getuid() == 0 else args


@dataclass
class ThrowawayPostgres:
    url: str
    directory: Path
    bindir: Path
    port: int

    async def stop(self) -> None:
        """Stop the server the way an operator would (`pg_ctl stop -m fast`)."""
        await self._pg_ctl("stop", "-m", "fast", "-w")

    async def start(self) -> None:
        await self._pg_ctl(
            "start", "-w", "-t", "60", "-l", str(self.directory / "server.log"),
            "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
        )  # fmt: skip

    async def _pg_ctl(self, *args: str) -> None:
        command = _as_owner(
            [str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), *args]
        )
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()


@contextlib.asynccontextmanager
async def throwaway_postgres() -> AsyncIterator[ThrowawayPostgres]:
    bindir = _bindir()
    if bindir is None:
        reason = "PostgreSQL's server binaries are not installed (see .ci/postgres.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    # Under /tmp and world-traversable: the server runs as `postgres` when we are root.
    directory = Path(tempfile.mkdtemp(prefix="orchestrate-pg-outage-", dir="/tmp"))
    os.chmod(directory, 0o755)
    env = os.environ | {"ORCHESTRATE_PG_DIR": str(directory)}
    proc = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / ".ci" / "postgres.sh"), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    url = out.decode().strip().rsplit("=", 1)[1]
    server = ThrowawayPostgres(url, directory, bindir, int((directory / "port").read_text()))
    try:
        yield server
    finally:
        with contextlib.suppress(AssertionError):
            await server._pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(directory, ignore_errors=True)
