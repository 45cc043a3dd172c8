"""The ledger through an outage: PostgreSQL stopped mid-run, a full disk under SQLite, and a
shutdown while the database is down. Every paid call ends up recorded exactly once, and every
run that ended is closed (its reservation released), once the database is back.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.ledger import BudgetRefusal, Ledger, Reservation, open_ledger
from bot.ledger.spill import CallWrite, RunEnd, SpillFile, StrategySet, ThreadSet
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


async def test_spilled_writes_are_replayed_once_at_the_next_start(
    ledger_url: str, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    async with open_ledger(ledger_url, spill_file=spill) as ledger:
        run_id = await reserved_run(ledger)
        assert await ledger.runs.record_call(run_id, PLAN, key="k-plan", now=NOW)
    # What a process that could not reach the database at shutdown leaves behind: one call
    # that had in fact landed (its COMMIT's answer was lost), one that had not, and the end.
    SpillFile(spill).append(
        [
            CallWrite("k-plan", run_id, PLAN, NOW),
            CallWrite("k-review", run_id, REVIEW, NOW),
            ThreadSet(run_id, "C1", "1700000000.000100"),
            StrategySet(run_id, STRATEGY, NOW),
            RunEnd(run_id, "finished", 9.5, None, NOW),
        ]
    )

    for _ in range(2):  # a second start finds nothing left to replay
        async with open_ledger(ledger_url, spill_file=spill) as ledger:
            run = await ledger.runs.get_run(run_id)
            assert run is not None
            assert (run.status, run.calls, run.cost_usd) == ("finished", 2, Decimal("0.058"))
            assert run.thread_ts == "1700000000.000100"
            kept = await ledger.runs.kept_strategy(run_id)
            assert kept is not None and kept.strategy == STRATEGY
            assert await held_usd(ledger) == 0
        assert not spill.exists()


async def test_a_spill_line_cut_short_is_set_aside_and_the_rest_replayed(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "spill.jsonl"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    async with open_ledger(url, spill_file=spill) as ledger:
        run_id = await reserved_run(ledger)
    SpillFile(spill).append([CallWrite("k-plan", run_id, PLAN, NOW)])
    with spill.open("a") as f:
        f.write('{"kind": "call", "key": "k-rev')  # a crash in the middle of an append

    async with open_ledger(url, spill_file=spill) as ledger:
        run = await ledger.runs.get_run(run_id)
        assert run is not None and run.calls == 1
    assert not spill.exists()
    assert (tmp_path / "spill.jsonl.rejected").read_text().startswith('{"kind": "call"')


def _damaged(good: dict[str, Any]) -> list[bytes]:
    """Spill lines no write of ours could have produced, each alone on its line."""

    def call(**changes: Any) -> bytes:
        line = json.loads(json.dumps(good))
        for path, value in changes.items():
            *parents, leaf = path.split("__")
            target = line
            for name in parents:
                target = target[name]
            target[leaf] = value
        return json.dumps(line).encode()

    return [
        b"\xff\xfe\x00garbage \x80\x81",  # binary
        b"[" * 100_000 + b"]" * 100_000,  # nested past any parser's recursion
        b"{}",  # no kind
        b'{"kind": "nonsense"}',
        call(call__cost_usd="12 dollars"),  # a cost that is not a number
        call(call__cost_usd="-100"),  # a negative cost would lower someone's spend
        call(call__cost_usd="NaN"),
        call(call__cost_usd=5),  # a number where the writer writes text
        call(call__usage__input_tokens="500"),  # a count as a string
        call(call__usage__output_tokens=-3),
        call(call__usage__input_tokens=1.5),
        call(call__model=None),
        call(run_id="no-such-run"),  # a run the ledger does not know
    ]


async def test_a_damaged_spill_file_never_stops_a_start_and_no_bad_line_is_counted(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "spill.jsonl"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    async with open_ledger(url, spill_file=spill) as ledger:
        run_id = await reserved_run(ledger)
    SpillFile(spill).append([CallWrite("k-plan", run_id, PLAN, NOW)])
    good = json.loads(spill.read_text().splitlines()[0])
    good["key"] = "k-other"
    bad = _damaged(good)
    with spill.open("ab") as f:
        f.writelines(line + b"\n" for line in bad)

    async with open_ledger(url, spill_file=spill) as ledger:  # starts: nothing is fatal
        run = await ledger.runs.get_run(run_id)
    assert run is not None and run.calls == 1  # the good line, and no bad one
    assert run.cost_usd == PLAN.cost_usd
    assert not spill.exists()
    rejected = (tmp_path / "spill.jsonl.rejected").read_bytes().splitlines()
    assert len(rejected) == len(bad)


async def test_postgres_stopped_mid_run_loses_no_record_and_closes_the_run(
    tmp_path: Path,
) -> None:
    async with (
        throwaway_postgres() as pg,
        open_ledger(pg.url, spill_file=tmp_path / "spill.jsonl") as ledger,
    ):
        run_id = await reserved_run(ledger)
        assert await ledger.writer.record_call(run_id, PLAN, now=NOW)
        await pg.stop()

        # The run goes on: nothing waits on the database, nothing is dropped.
        for _ in range(3):
            assert not await ledger.writer.record_call(run_id, REVIEW, now=NOW)
        await ledger.writer.finish_run(run_id, "finished", elapsed_s=20.0, now=NOW)
        assert ledger.writer.pending == 4

        await pg.start()
        await ledger.writer.flushed()
        run = await ledger.runs.get_run(run_id)
        assert run is not None
        assert (run.status, run.calls, run.cost_usd) == ("finished", 4, Decimal("0.086"))
        assert await held_usd(ledger) == 0


async def test_postgres_down_at_shutdown_spills_and_the_next_start_replays(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "spill.jsonl"
    async with throwaway_postgres() as pg:
        async with open_ledger(pg.url, spill_file=spill) as ledger:
            run_id = await reserved_run(ledger)
            await pg.stop()
            await ledger.writer.record_call(run_id, PLAN, now=NOW)
            await ledger.writer.record_call(run_id, REVIEW, now=NOW)
            await ledger.writer.finish_run(run_id, "interrupted", elapsed_s=3.0, now=NOW)
        assert len(spill.read_text().splitlines()) == 3

        await pg.start()
        async with open_ledger(pg.url, spill_file=spill) as ledger:
            run = await ledger.runs.get_run(run_id)
            assert run is not None
            assert (run.status, run.calls, run.cost_usd) == ("interrupted", 2, Decimal("0.058"))
        assert not spill.exists()


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


async def test_a_full_disk_under_sqlite_holds_writes_until_there_is_room(tmp_path: Path) -> None:
    with small_tmpfs() as disk:
        url = f"sqlite:///{disk / 'ledger.db'}"
        async with open_ledger(url, spill_file=tmp_path / "spill.jsonl") as ledger:
            run_id = await reserved_run(ledger)
            filler = fill(disk)

            assert not await ledger.writer.record_call(run_id, PLAN, now=NOW)
            assert not await ledger.writer.record_call(run_id, REVIEW, now=NOW)
            await ledger.writer.finish_run(run_id, "finished", elapsed_s=4.0, now=NOW)
            assert ledger.writer.pending == 3

            filler.unlink()
            await ledger.writer.flushed()
            run = await ledger.runs.get_run(run_id)
            assert run is not None
            assert (run.status, run.calls, run.cost_usd) == ("finished", 2, Decimal("0.058"))
            assert await held_usd(ledger) == 0


async def test_a_disk_still_full_at_shutdown_spills_elsewhere_and_replays(tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    with small_tmpfs() as disk:
        url = f"sqlite:///{disk / 'ledger.db'}"
        async with open_ledger(url, spill_file=spill) as ledger:
            run_id = await reserved_run(ledger)
            filler = fill(disk)
            await ledger.writer.record_call(run_id, PLAN, now=NOW)
            await ledger.writer.finish_run(run_id, "finished", elapsed_s=4.0, now=NOW)
        assert len(spill.read_text().splitlines()) == 2

        filler.unlink()
        async with open_ledger(url, spill_file=spill) as ledger:
            run = await ledger.runs.get_run(run_id)
            assert run is not None and (run.status, run.calls) == ("finished", 1)
        assert not spill.exists()


def test_the_default_spill_file_is_per_database() -> None:
    from bot.ledger.spill import default_spill_path

    assert default_spill_path("sqlite:////var/lib/orchestrate/ledger.db") == Path(
        "/var/lib/orchestrate/ledger.db.spill.jsonl"
    )
    a = default_spill_path("postgresql://u@db/one")
    assert a != default_spill_path("postgresql://u@db/two")
    assert a.parent.name == "orchestrate"


def test_a_spilled_call_reads_back_equal_every_field_included() -> None:
    from dataclasses import replace

    from bot.ledger.spill import from_json, to_json

    usage = replace(PLAN.usage, estimated=True, thinking_tokens=12)
    marked = replace(PLAN, usage=usage, error="stream cut", component_index=3)
    write = CallWrite("k", "r", marked, NOW)
    assert from_json(json.loads(json.dumps(to_json(write)))) == write
    strategy = StrategySet("r", STRATEGY, NOW)
    assert from_json(json.loads(json.dumps(to_json(strategy)))) == strategy


async def test_with_questions_not_kept_no_strategy_is_held_or_spilled_through_an_outage(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "spill.jsonl"
    with small_tmpfs() as disk:
        url = f"sqlite:///{disk / 'ledger.db'}"
        async with open_ledger(url, spill_file=spill, store_questions=False) as ledger:
            run_id = await reserved_run(ledger)
            filler = fill(disk)
            await ledger.writer.record_call(run_id, PLAN, now=NOW)
            await ledger.writer.record_strategy(run_id, STRATEGY, now=NOW)
            await ledger.writer.finish_run(run_id, "finished", elapsed_s=4.0, now=NOW)
            assert ledger.writer.pending == 2
        filler.unlink()
    spilled = spill.read_text()
    assert len(spilled.splitlines()) == 2 and "strategy" not in spilled
    assert STRATEGY.title not in spilled
