"""The ledger through an outage: PostgreSQL stopped mid-run, a full disk under SQLite, and a
shutdown while the database is down. A run's writes wait where they are, as its engine's
checkpoints do, and land once the database is back: every paid call recorded once, every run
that ended closed (its reservation released). A write cut off while it waits is logged with
its figures, never a text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Awaitable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from bot.ledger import BudgetRefusal, CallHold, Ledger, Limits, Reservation, open_ledger
from bot.ledger.writer import older_spill_path
from tests.ledger.test_ledger_conformance import NOW, PLAN, REVIEW
from tests.ledger.test_retries import STRATEGY
from tests.ledger.throwaway_pg import throwaway_postgres


async def reserved_run(ledger: Ledger) -> str:
    outcome = await ledger.writer.reserve_run(
        team_id="T1", channel_id="C1", user_id="U1", question="q",
        worst_case_usd=Decimal("0.50"), user_budget=None, workspace_budget=Decimal(10), now=NOW,
    )  # fmt: skip
    assert isinstance(outcome, Reservation)
    return outcome.run_id


async def held_usd(ledger: Ledger) -> Decimal:
    """What runs in progress hold against the month beyond their cost, as a budget sees it."""
    refusal = await ledger.runs.reserve_run(
        team_id="T1", channel_id="C1", user_id="U9", question="q",
        worst_case_usd=Decimal("0.01"), user_budget=None, workspace_budget=Decimal(0), now=NOW,
    )  # fmt: skip
    assert isinstance(refusal, BudgetRefusal)
    return refusal.reserved_usd


async def the_rest_of_a_run(ledger: Ledger, run_id: str) -> None:
    """What a run writes after its strategy: a held example call, the review, its end."""
    limits = Limits(user_daily=None, workspace_monthly=Decimal(10))
    hold = await ledger.writer.reserve_call(run_id, worst_case_usd=Decimal("0.02"), limits=limits)
    assert isinstance(hold, CallHold)
    assert await ledger.writer.record_call(run_id, REVIEW, key=hold.key, now=NOW)
    await ledger.writer.record_call(run_id, REVIEW, key=hold.key, now=NOW)  # sent again
    await ledger.writer.finish_run(run_id, "finished", elapsed_s=20.0, now=NOW)


async def waits(write: Awaitable[None], seconds: float = 1.5) -> asyncio.Task[None]:
    """`write` as a task, checked to be still waiting after `seconds`."""
    task = asyncio.ensure_future(write)
    await asyncio.sleep(seconds)
    assert not task.done(), "a write went on without the database"
    return task


async def test_postgres_stopped_mid_run_the_writes_wait_and_land_once_it_is_back() -> None:
    async with throwaway_postgres() as pg, open_ledger(pg.url) as ledger:
        run_id = await reserved_run(ledger)
        assert await ledger.writer.record_call(run_id, PLAN, now=NOW)
        await pg.stop()
        rest = await waits(the_rest_of_a_run(ledger, run_id))

        await pg.start()
        async with asyncio.timeout(60):
            await rest
        run = await ledger.runs.get_run(run_id)
        assert run is not None
        assert (run.status, run.calls, run.cost_usd) == ("finished", 2, Decimal("0.058"))
        assert await held_usd(ledger) == 0


async def test_a_write_cut_off_while_the_database_is_down_is_logged_figures_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shutdown while the database is away: the run's workflow stays pending and resumes
    at the next start; the call it was recording is in the log, to be reconciled, with its
    key, request id, tokens and cost, and no strategy text."""
    async with throwaway_postgres() as pg, open_ledger(pg.url) as ledger:
        run_id = await reserved_run(ledger)
        await pg.stop()
        with caplog.at_level(logging.WARNING, logger="bot.ledger.writer"):
            call = await waits(ledger.writer.record_call(run_id, PLAN, key="k-plan", now=NOW))
            strategy = await waits(ledger.writer.record_strategy(run_id, STRATEGY), 0.2)
            for task in (call, strategy):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        given_up = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(given_up) == 2 and all("given up" in m for m in given_up)
        assert "k-plan" in given_up[0] and PLAN.request_id in given_up[0]
        assert '"cost_usd": "0.044"' in given_up[0] and '"output_tokens": 2000' in given_up[0]
        assert run_id in given_up[1]
        for secret in (STRATEGY.title, STRATEGY.essence):
            assert secret not in caplog.text
        await pg.start()


@contextlib.contextmanager
def small_tmpfs() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root; run the suite as root")
    mount = Path(tempfile.mkdtemp(prefix="orchestrate-full-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
        mount.rmdir()


def fill(directory: Path) -> Path:
    """Write zeros into `directory` until its file system is full; returns the filler."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(65536))
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


async def test_a_full_disk_under_sqlite_holds_the_writes_until_there_is_room() -> None:
    with small_tmpfs() as disk:
        async with open_ledger(f"sqlite:///{disk / 'ledger.db'}") as ledger:
            run_id = await reserved_run(ledger)
            filler = fill(disk)
            first = await waits(ledger.writer.record_call(run_id, PLAN, now=NOW))
            rest = await waits(the_rest_of_a_run(ledger, run_id), 0.2)

            filler.unlink()
            async with asyncio.timeout(30):
                assert await first
                await rest
            run = await ledger.runs.get_run(run_id)
            assert run is not None
            assert (run.status, run.calls, run.cost_usd) == ("finished", 2, Decimal("0.058"))
            assert await held_usd(ledger) == 0


async def test_with_questions_not_kept_no_strategy_waits_or_is_logged_through_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with small_tmpfs() as disk:
        url = f"sqlite:///{disk / 'ledger.db'}"
        async with open_ledger(url, store_questions=False) as ledger:
            run_id = await reserved_run(ledger)
            filler = fill(disk)
            async with asyncio.timeout(1):  # nothing to write: it does not wait
                await ledger.writer.record_strategy(run_id, STRATEGY, now=NOW)
            filler.unlink()
    assert STRATEGY.title not in caplog.text


def test_an_older_versions_spill_file_is_per_database() -> None:
    assert older_spill_path("sqlite:////var/lib/orchestrate/ledger.db") == Path(
        "/var/lib/orchestrate/ledger.db.spill.jsonl"
    )
    a = older_spill_path("postgresql://u@db/one")
    assert a != older_spill_path("postgresql://u@db/two")
    assert a.parent.name == "orchestrate"


async def test_an_older_versions_spill_file_is_named_at_start_never_replayed_nor_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Versions before the durable engine spilled what they could not land at shutdown. This
    one does not replay it (docs/operations.md: start the older version once): it says so
    at each start, and starts; the file is left as it was."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spill = older_spill_path(url)
    line = '{"kind": "call", "key": "k", "run_id": "r", "call": {"cost_usd": "-100"}}\n'
    spill.write_text(line)
    async with open_ledger(url) as ledger:
        assert (await ledger.reports.summary("T1", since=NOW, until=NOW)).calls == 0
    named = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(named) == 1 and str(spill) in named[0] and "older version" in named[0]
    assert spill.read_text() == line

    elsewhere = tmp_path / "kept-elsewhere.jsonl"  # LEDGER_SPILL_FILE, when it was set
    elsewhere.write_text(line)
    caplog.clear()
    async with open_ledger(url, older_spill=elsewhere):
        pass
    assert str(elsewhere) in caplog.text
