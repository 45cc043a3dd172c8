"""Claims: seen keys, so that exactly one caller, of every instance sharing the ledger, takes
a piece of work that Slack may deliver more than once.

Slack resends an Events API event it thinks was not acknowledged (same `event_id`), and a
captured signed request can be replayed within its five-minute signature window (same
`trigger_id`). Each entry point claims its delivery's key before doing anything: `claim`
inserts the key, and the primary key lets exactly one caller succeed. A claim expires after
its `ttl` (a day by default, well past Slack's last retry and the signature window), after
which the key can be claimed again and `expire` deletes it, so the table stays small.
Keys are `replay_key(kind, id)`: `command:<trigger_id>`, `event:<event_id>`,
`action:<trigger_id>`.

A claim can also mark work under way rather than a delivery seen: a Retry of a failed example
claims `retry:<run id>:<component>` for at most as long as a retry can take, and `release`s
it when the retry ends, so a second click (on any instance) is turned away only while the
first one's retry runs. `release` names the moment the claim was taken, so a holder whose
claim lapsed and was taken over can never free the new holder's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from bot.ledger.driver import Driver, now_utc

CLAIM_TTL = timedelta(days=1)
Kind = Literal["command", "event", "action"]


def replay_key(kind: Kind, ident: str) -> str:
    """The key a delivery is claimed under: its kind, and the id Slack gave it."""
    return f"{kind}:{ident}"


class Claims:
    """The `claims` table: a key, when it was claimed, and when the claim lapses."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def claim(
        self, key: str, *, ttl: timedelta = CLAIM_TTL, now: datetime | None = None
    ) -> bool:
        """True for exactly one caller per `key` until the claim expires (atomic across
        instances: an insert, or the take-over of an expired claim, in one statement)."""
        moment = now_utc(now)
        async with self._db.write() as c:
            claimed = await c.execute(
                "INSERT INTO claims (key, claimed_at, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET claimed_at = excluded.claimed_at,"
                " expires_at = excluded.expires_at"
                " WHERE claims.expires_at IS NOT NULL AND claims.expires_at <= excluded.claimed_at",
                key,
                self._db.to_db_time(moment),
                self._db.to_db_time(moment + ttl),
            )
        return claimed == 1

    async def release(self, key: str, *, claimed_at: datetime) -> bool:
        """Give back the claim on `key` taken at `claimed_at` (the `now` given to `claim`);
        False if it is no longer that claim (it lapsed and another caller took it)."""
        async with self._db.write() as c:
            released = await c.execute(
                "DELETE FROM claims WHERE key = ? AND claimed_at = ?",
                key,
                self._db.to_db_time(claimed_at),
            )
        return released == 1

    async def expire(self, *, now: datetime | None = None) -> int:
        """Delete lapsed claims; returns how many."""
        async with self._db.write() as c:
            return await c.execute(
                "DELETE FROM claims WHERE expires_at <= ?", self._db.to_db_time(now_utc(now))
            )
