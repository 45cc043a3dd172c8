"""The spill file: ledger writes that could not land before shutdown, kept on local disk.

When the database is unavailable at shutdown, the run writer appends each write it still
holds (a call's record, a run's end, a thread, a strategy) as one JSON line; the next start
replays them before serving. Replays are idempotent (a call carries its key; ends and
threads are plain updates or upserts), so a file replayed twice, or by two processes, counts
nothing twice. Appends and replays hold an exclusive `flock`, so two processes on one host
never interleave a rewrite with an append. The default path is per database: next to a
SQLite file, or under the XDG state directory for PostgreSQL, named by a hash of the URL, so
a file is only ever replayed into the database it was written for.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, get_args

from bot.core.models import Strategy
from bot.core.usage import CallRecord, TokenUsage
from bot.ledger.types import EndStatus, strategy_from_json, strategy_to_json

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallWrite:
    """One call's record, with the key that makes writing it twice harmless."""

    key: str
    run_id: str
    call: CallRecord
    at: datetime


@dataclass(frozen=True, slots=True)
class RunEnd:
    run_id: str
    status: EndStatus
    elapsed_s: float
    error: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ThreadSet:
    run_id: str
    channel: str
    ts: str


@dataclass(frozen=True, slots=True)
class StrategySet:
    run_id: str
    strategy: Strategy
    at: datetime


PendingWrite = CallWrite | RunEnd | ThreadSet | StrategySet


def default_spill_path(database_url: str) -> Path:
    """`<file>.spill.jsonl` beside a SQLite file; else `$XDG_STATE_HOME/orchestrate/…`."""
    if database_url.startswith("sqlite:///"):
        db_file = database_url.removeprefix("sqlite:///").split("?", 1)[0]
        return Path(db_file + ".spill.jsonl")
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:12]
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "orchestrate" / f"ledger-spill-{digest}.jsonl"


class SpillFile:
    """Appends pending writes as JSON lines; hands them back, under a lock, to be replayed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, writes: list[PendingWrite]) -> None:
        """Add `writes` durably (fsync) to the end of the file."""
        if not writes:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f, _locked(f):
            f.writelines(json.dumps(to_json(w)) + "\n" for w in writes)
            f.flush()
            os.fsync(f.fileno())

    @contextmanager
    def replaying(self) -> Iterator[list[PendingWrite]]:
        """The writes in the file, locked against other processes; the caller removes from
        the list the ones that landed, and what is left is written back on exit."""
        if not self.path.exists():
            yield []
            return
        with self.path.open("r+b") as f, _locked(f):
            writes = self._readable([line for line in f if line.strip()])
            left = writes.copy()
            yield left
            f.seek(0)
            f.truncate()
            f.writelines((json.dumps(to_json(w)) + "\n").encode() for w in left)
            f.flush()
            os.fsync(f.fileno())
        if not left:
            self.path.unlink(missing_ok=True)

    def _readable(self, lines: list[bytes]) -> list[PendingWrite]:
        """The writes in `lines`; a line that cannot be read (cut short by a crash during an
        append, damaged, or holding a value no write could have: a negative or malformed
        cost, a count that is not a whole number) is set aside, never fatal."""
        writes: list[PendingWrite] = []
        rejected: list[bytes] = []
        for line in lines:
            try:
                writes.append(from_json(json.loads(line.decode("utf-8"))))
            except (ValueError, KeyError, TypeError, ArithmeticError, RecursionError):
                rejected.append(line if line.endswith(b"\n") else line + b"\n")
        self.reject(rejected)
        return writes

    def reject(self, lines: list[bytes]) -> None:
        """Move `lines` to `<file>.rejected` (kept for an operator) and say so in the log."""
        if not lines:
            return
        kept = self.path.with_name(self.path.name + ".rejected")
        with kept.open("ab") as f:
            f.writelines(lines)
        log.error("%d unusable lines of %s moved to %s", len(lines), self.path, kept)


@contextmanager
def _locked(f: IO[Any]) -> Iterator[None]:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def for_log(write: PendingWrite) -> str:
    """A write as a log line may show it: whole, except a strategy's text, which is private
    like the question it answers (a lost strategy costs only the Retry of that run)."""
    if isinstance(write, StrategySet):
        return json.dumps({"kind": "strategy", "run_id": write.run_id, "at": write.at.isoformat()})
    return json.dumps(to_json(write))


def to_json(write: PendingWrite) -> dict[str, Any]:
    """A JSON-able dict of one pending write (also what a last-resort log line shows)."""
    match write:
        case CallWrite(key=key, run_id=run_id, call=call, at=at):
            return {"kind": "call", "key": key, "run_id": run_id, "at": at.isoformat(),
                    "call": _call_json(call)}  # fmt: skip
        case RunEnd(run_id=run_id, status=status, elapsed_s=elapsed, error=error, at=at):
            return {"kind": "end", "run_id": run_id, "status": status, "elapsed_s": elapsed,
                    "error": error, "at": at.isoformat()}  # fmt: skip
        case ThreadSet(run_id=run_id, channel=channel, ts=ts):
            return {"kind": "thread", "run_id": run_id, "channel": channel, "ts": ts}
        case StrategySet(run_id=run_id, strategy=strategy, at=at):
            return {"kind": "strategy", "run_id": run_id, "at": at.isoformat(),
                    "strategy": strategy_to_json(strategy)}  # fmt: skip


def from_json(data: dict[str, Any]) -> PendingWrite:
    kind = data["kind"]
    if kind == "call":
        at = datetime.fromisoformat(data["at"])
        return CallWrite(data["key"], data["run_id"], _call_from_json(data["call"]), at)
    if kind == "end":
        status = data["status"]
        if status not in get_args(EndStatus):
            raise ValueError(f"unknown run status {status!r} in the spill file")
        at = datetime.fromisoformat(data["at"])
        return RunEnd(data["run_id"], status, float(data["elapsed_s"]), data["error"], at)
    if kind == "thread":
        return ThreadSet(data["run_id"], data["channel"], data["ts"])
    if kind == "strategy":
        at = datetime.fromisoformat(data["at"])
        return StrategySet(data["run_id"], strategy_from_json(data["strategy"]), at)
    raise ValueError(f"unknown write {kind!r} in the spill file")


def _call_json(call: CallRecord) -> dict[str, Any]:
    # Field by field, so a field added to CallRecord later is carried without a change here.
    fields = {f.name: getattr(call, f.name) for f in dataclasses.fields(call)}
    fields["usage"] = dataclasses.asdict(call.usage)
    fields["cost_usd"] = None if call.cost_usd is None else str(call.cost_usd)
    return fields


def _call_from_json(data: dict[str, Any]) -> CallRecord:
    # Fields a newer build added are left out rather than refused.
    fields = _known(CallRecord, data)
    usage = _known(TokenUsage, data["usage"])
    for name, value in usage.items():
        wanted = bool if name == "estimated" else int
        if type(value) is not wanted or (wanted is int and value < 0):
            raise ValueError(f"{name} is not a count: {value!r}")
    fields["usage"] = TokenUsage(**usage)
    fields["cost_usd"] = None if data["cost_usd"] is None else _cost(data["cost_usd"])
    for name in ("role", "model", "outcome"):
        if not isinstance(fields.get(name), str):
            raise ValueError(f"{name} is not text")
    return CallRecord(**fields)


def _cost(value: Any) -> Decimal:
    """A call's cost as written: dollars as a decimal string, finite and not negative."""
    if not isinstance(value, str):
        raise ValueError(f"a cost is written as text, not {type(value).__name__}")
    cost = Decimal(value)
    if not cost.is_finite() or cost < 0:
        raise ValueError(f"not a cost: {value!r}")
    return cost


def _known(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
