"""The finance export: every call since a moment, as CSV, streamed from the database.

`CallExport.calls_csv` writes one row per call made in a period (by call time), with its
run's team, channel and user, every usage bucket, and the cost as an exact 9-decimal dollar
string (empty when unpriced, never 0). Rows are streamed, so a year of calls never sits in
memory.
"""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any, TextIO

from bot.ledger.driver import Driver, Row
from bot.ledger.types import from_nanos

CSV_COLUMNS = (
    "call_id", "created_at", "run_id", "team_id", "channel_id", "user_id", "role", "model",
    "request_id", "component_index", "input_tokens", "output_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "cache_read_tokens", "thinking_tokens", "cost_usd", "latency_s",
    "outcome", "error", "estimated",
)  # fmt: skip
_CREATED_AT, _COST = CSV_COLUMNS.index("created_at"), CSV_COLUMNS.index("cost_usd")


class CallExport:
    """Streams calls out of the ledger as CSV."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def calls_csv(
        self, team_id: str | None, since: datetime, out: TextIO, *, until: datetime | None = None
    ) -> int:
        """Every call made in [since, until) (by call time; no end: up to now) as CSV for
        finance; returns the rows."""
        sql = _EXPORT + " WHERE c.created_at >= ?"
        args: list[Any] = [self._db.to_db_time(since)]
        if until is not None:
            sql += " AND c.created_at < ?"
            args.append(self._db.to_db_time(until))
        if team_id is not None:
            sql += " AND c.team_id = ?"
            args.append(team_id)
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        written = 0
        async with self._db.read() as c:
            async for row in c.stream(sql + " ORDER BY c.created_at, c.id", *args):
                writer.writerow(self._csv_row(row))
                written += 1
        return written

    def _csv_row(self, row: Row) -> list[Any]:
        cells = list(row)
        cells[_CREATED_AT] = self._db.from_db_time(cells[_CREATED_AT]).isoformat()
        cost = cells[_COST]
        cells[_COST] = "" if cost is None else f"{from_nanos(int(cost)):.9f}"
        return ["" if cell is None else cell for cell in cells]


_EXPORT = (
    "SELECT c.id, c.created_at, c.run_id, c.team_id, r.channel_id, c.user_id, c.role,"
    " c.model, c.request_id, c.component_index, c.input_tokens, c.output_tokens,"
    " c.cache_write_5m_tokens, c.cache_write_1h_tokens, c.cache_read_tokens,"
    " c.thinking_tokens, c.cost_nanos, c.latency_s, c.outcome, c.error, c.estimated"
    " FROM calls c JOIN runs r ON r.id = c.run_id"
)
