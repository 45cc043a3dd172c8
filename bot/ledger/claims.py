"""Claims: one row per key, so that exactly one caller, of every instance sharing the
ledger, takes a piece of work (a Slack event delivered twice, or retried with the same
`event_id`, is answered once). Inserting the key is the claim; the primary key decides.
"""

from __future__ import annotations

from datetime import datetime

from bot.ledger.driver import Driver, now_utc


class Claims:
    """The `claims` table."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def claim(self, key: str, *, now: datetime | None = None) -> bool:
        """True for exactly one caller per `key`, ever."""
        async with self._db.write() as c:
            claimed = await c.execute(
                "INSERT INTO claims (key, claimed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                key,
                self._db.to_db_time(now_utc(now)),
            )
        return claimed == 1
