"""A run's ledger writes wait out an outage where they are, as the run itself does.

`RunWriter` is what a run and a follow-up write through (`RunLedger`): a `RunBook` whose
writes wait. A run is a durable workflow (`bot.slack.engine`): while its database is away
the engine cannot checkpoint the run's steps, so the run waits for the database whatever its
ledger writes do. They wait with
it: a call's record, a budget hold, a run's end, its thread and its strategy are each tried
until they land, with capped, jittered exponential backoff, and the run goes on once they
have. `reserve_run` and the reads are not retried: a run that cannot be admitted must not
start, and the person who asked is told so.

Every write may be sent twice harmlessly (a call's record carries the key of its step or
budget hold, unique in the ledger; a run's end, its thread and its strategy are updates of
one row), so a write whose fate is unknown (the connection dropped during COMMIT) is simply
sent again, and a step the engine re-runs after a crash never counts a call twice. This
replaced an in-memory backlog and a spill file for what was still held at shutdown: with
the run waiting on its checkpoints anyway, the backlog only let writes fall behind a run
that could not move. A write still waiting when its run is cut off (a shutdown while the
database is away) is logged at ERROR with its figures, never a text, and its run's workflow
resumes at the next start. A write the database refuses for another reason (a bug) is not
retried; it is logged at ERROR in the same way and the run goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bot.core.models import Strategy
from bot.core.usage import CallRecord
from bot.ledger.budgets import Limits
from bot.ledger.runs import RunBook
from bot.ledger.types import BudgetStop, CallHold, EndStatus, LedgerUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
WRITE_TIMEOUT_S = 10.0
FIRST_RETRY_S = 0.25
MAX_RETRY_S = 5.0


class RunWriter(RunBook):
    """A `RunBook` whose writes wait until they land (the reads and `reserve_run` do not)."""

    async def reserve_call(
        self, run_id: str, *, worst_case_usd: Decimal, limits: Limits, now: datetime | None = None
    ) -> CallHold | BudgetStop:
        """Hold one call's worst case (`RunBook.reserve_call`), once the ledger can: no call
        starts unheld, so the budgets hold through an outage too."""
        hold = partial(super().reserve_call, run_id, worst_case_usd=worst_case_usd, limits=limits,
                       now=now)  # fmt: skip
        return await _landed(hold, {"write": "hold", "run_id": run_id})

    async def release_call(self, hold: CallHold) -> None:
        await _landed(partial(super().release_call, hold), {"write": "release", "key": hold.key})

    async def record_call(
        self,
        run_id: str,
        call: CallRecord,
        *,
        key: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """True if written, False if a write with its key was already there (or refused)."""
        write = partial(super().record_call, run_id, call, key=key, now=now)
        described = {"write": "call", "run_id": run_id, "key": key, "call": _call_json(call)}
        return await _written(write, described, refused=False)

    async def finish_run(
        self,
        run_id: str,
        status: EndStatus,
        *,
        elapsed_s: float,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None:
        end = partial(super().finish_run, run_id, status, elapsed_s=elapsed_s, error=error, now=now)
        described = {"write": "end", "run_id": run_id, "status": status, "elapsed_s": elapsed_s}
        await _written(end, described, refused=None)

    async def set_thread(self, run_id: str, channel: str, ts: str) -> None:
        thread = partial(super().set_thread, run_id, channel, ts)
        await _written(thread, {"write": "thread", "run_id": run_id, "ts": ts}, refused=None)

    async def record_strategy(
        self, run_id: str, strategy: Strategy, *, now: datetime | None = None
    ) -> None:
        # The strategy's text is private like the question it answers: never in a log line.
        keep = partial(super().record_strategy, run_id, strategy, now=now)
        await _written(keep, {"write": "strategy", "run_id": run_id}, refused=None)


async def _landed(write: Callable[[], Awaitable[T]], described: dict[str, Any]) -> T:
    """`write()`'s result once the ledger takes it: an outage (`LedgerUnavailable`, or no
    answer within `WRITE_TIMEOUT_S`) is waited out; any other error is raised."""
    delay, waiting = FIRST_RETRY_S, False
    try:
        while True:
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    return await write()
            except (LedgerUnavailable, TimeoutError) as exc:
                log.warning("ledger unavailable, a write waits for it: %s (%s)",
                            json.dumps(described), exc)  # fmt: skip
                waiting = True
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, MAX_RETRY_S)
    except asyncio.CancelledError:
        if waiting:  # not a write cut off in its first try, with the database answering
            log.error("ledger write given up, its run cut off while it waited: %s",
                      json.dumps(described))  # fmt: skip
        raise


async def _written(write: Callable[[], Awaitable[T]], described: dict[str, Any], *,
                      refused: T) -> T:  # fmt: skip
    """`_landed`, except that a write the ledger refuses (a bug, not an outage) is logged
    whole, figures only, and the run goes on without it (`refused` stands in for it)."""
    try:
        return await _landed(write, described)
    except Exception:
        log.exception("ledger refused a write; the record: %s", json.dumps(described))
        return refused


def _call_json(call: CallRecord) -> dict[str, Any]:
    """A call's record as a log line may show it: figures and ids, no text."""
    fields = {f.name: getattr(call, f.name) for f in dataclasses.fields(call)}
    fields["usage"] = dataclasses.asdict(call.usage)
    fields["cost_usd"] = None if call.cost_usd is None else str(call.cost_usd)
    return fields


def older_spill_path(database_url: str) -> Path:
    """Where versions before the durable engine spilled writes they could not land at
    shutdown: `<file>.spill.jsonl` beside a SQLite file, else under `$XDG_STATE_HOME`."""
    if database_url.startswith("sqlite:///"):
        from bot.ledger.sqlite import path_from_url  # as `_driver` does: imported on use

        ledger_file = path_from_url(database_url)
        return ledger_file.with_name(ledger_file.name + ".spill.jsonl")
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:12]
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "orchestrate" / f"ledger-spill-{digest}.jsonl"


def name_older_spill(path: Path) -> None:
    """Say at start, never fatally, that an older version left writes this one does not
    replay (docs/operations.md: start that version once to land them)."""
    if path.is_file() and path.stat().st_size > 0:
        log.error(
            "%s holds ledger writes an older version could not land; this version does not "
            "replay them: start the older version once with the database reachable (it "
            "replays them at start), or move the file aside to drop them",
            path,
        )
