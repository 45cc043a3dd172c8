"""Admins' budget settings, their audit trail, and once-per-period notices.

Settings live in `team_settings`, one row per key, so that every change is recorded on its
own in `settings_changes` (who, which key, from what, to what, when). A key a team has never
saved falls back to the environment's initial value (`defaults`); once saved, the stored value
wins, including an explicit "none" (an empty value). Settings are read from the database at
every use, never cached, so a restarted process and every other instance see an admin's change
at once. Saving takes the team's settings lock, so two admins saving together are applied one
after the other and both are audited.

A team's settings have a version (`version`): the id of its latest audited change, which
only grows. A save can be `based_on` the version its form was filled from; if another save
came in between (another admin's, or the same submission replayed), it is refused with
`SettingsChanged` inside the locked transaction, so a submission takes effect at most once
and never undoes a change its author did not see. (A notice sent once per period, an alert
or a digest, is a workflow whose id names the period: `bot/slack/workflows.py`.)
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bot.ledger.driver import Conn, Driver, now_utc
from bot.ledger.types import BudgetSettings, SettingChange, SettingsChanged
from bot.settings import Settings

WORKSPACE_MONTHLY = "workspace_monthly_usd"
USER_DAILY = "user_daily_usd"
CHANNEL_PREFIX = "channel_monthly_usd:"
THRESHOLDS = "alert_thresholds_pct"
ALERT_CHANNEL = "alert_channel"
ALLOWED_CHANNELS = "allowed_channels"


def encode(settings: BudgetSettings) -> dict[str, str]:
    """Settings as stored key → value ("" for none)."""
    values = {
        WORKSPACE_MONTHLY: _money(settings.workspace_monthly_usd),
        USER_DAILY: _money(settings.user_daily_usd),
        THRESHOLDS: ",".join(str(t) for t in settings.alert_thresholds_pct),
        ALERT_CHANNEL: settings.alert_channel or "",
        ALLOWED_CHANNELS: ",".join(settings.allowed_channels),
    }
    for channel, budget in settings.channel_monthly_usd:
        values[CHANNEL_PREFIX + channel] = _money(budget)
    return values


def decode(values: dict[str, str]) -> BudgetSettings:
    channels = tuple(
        sorted(
            (key.removeprefix(CHANNEL_PREFIX), Decimal(value))
            for key, value in values.items()
            if key.startswith(CHANNEL_PREFIX) and value
        )
    )
    thresholds = values.get(THRESHOLDS, "")
    return BudgetSettings(
        workspace_monthly_usd=_amount(values.get(WORKSPACE_MONTHLY, "")),
        user_daily_usd=_amount(values.get(USER_DAILY, "")),
        channel_monthly_usd=channels,
        alert_thresholds_pct=tuple(int(t) for t in thresholds.split(",") if t),
        alert_channel=values.get(ALERT_CHANNEL) or None,
        allowed_channels=tuple(c for c in values.get(ALLOWED_CHANNELS, "").split(",") if c),
    )


def _money(amount: Decimal | None) -> str:
    return "" if amount is None else str(amount)


def _amount(value: str) -> Decimal | None:
    return Decimal(value) if value else None


class Governance:
    """The `team_settings`, `settings_changes` and `notices` tables."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def budget_settings(self, team_id: str, defaults: BudgetSettings) -> BudgetSettings:
        """The team's settings: what admins saved, the environment's values for the rest."""
        async with self._db.read() as c:
            stored = await self._stored(c, team_id)
        return decode(encode(defaults) | stored)

    async def save(
        self,
        team_id: str,
        settings: BudgetSettings,
        *,
        changed_by: str,
        defaults: BudgetSettings,
        based_on: str | None = None,
        now: datetime | None = None,
    ) -> tuple[SettingChange, ...]:
        """Store `settings`, auditing every key that changes; returns the changes made.
        With `based_on` (a `version`), raise `SettingsChanged` and save nothing if the
        settings are no longer at that version."""
        moment = now_utc(now)
        wanted = encode(settings)
        async with self._db.write(lock_key=f"orchestrate.settings:{team_id}") as c:
            if based_on is not None and based_on != await self._version(c, team_id):
                raise SettingsChanged(f"the settings of {team_id} changed since {based_on!r}")
            current = encode(defaults) | await self._stored(c, team_id)
            # A channel budget left out of `settings` was removed.
            for key in current:
                if key.startswith(CHANNEL_PREFIX) and key not in wanted and current[key]:
                    wanted[key] = ""
            changes = tuple(
                SettingChange(key, current.get(key) or None, value or None, changed_by, moment)
                for key, value in sorted(wanted.items())
                if (current.get(key) or "") != value
            )
            for change in changes:
                await self._write(c, team_id, change)
        return changes

    async def version(self, team_id: str) -> str:
        """The version of the team's settings now, for a later `save(based_on=...)`."""
        async with self._db.read() as c:
            return await self._version(c, team_id)

    async def _version(self, c: Conn, team_id: str) -> str:
        # Ids only grow, and every save that changes anything adds one: unlike a digest of
        # the values, a change undone later (A → B → A) still counts as a change.
        rows = await c.fetch("SELECT MAX(id) FROM settings_changes WHERE team_id = ?", team_id)
        return str(rows[0][0] or 0)

    async def changes(self, team_id: str, *, limit: int = 5) -> tuple[SettingChange, ...]:
        """The team's latest setting changes, newest first."""
        async with self._db.read() as c:
            rows = await c.fetch(
                "SELECT key, old_value, new_value, changed_by, changed_at FROM settings_changes"
                f" WHERE team_id = ? ORDER BY changed_at DESC, id DESC LIMIT {int(limit)}",
                team_id,
            )
        return tuple(
            SettingChange(str(k), old, new, str(by), self._db.from_db_time(at))
            for k, old, new, by, at in rows
        )

    async def _stored(self, c: Conn, team_id: str) -> dict[str, str]:
        rows = await c.fetch("SELECT key, value FROM team_settings WHERE team_id = ?", team_id)
        return {str(key): str(value) for key, value in rows}

    async def _write(self, c: Conn, team_id: str, change: SettingChange) -> None:
        at = self._db.to_db_time(change.changed_at)
        await c.execute(
            "INSERT INTO team_settings (team_id, key, value, updated_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (team_id, key) DO UPDATE SET"
            " value = excluded.value, updated_by = excluded.updated_by,"
            " updated_at = excluded.updated_at",
            team_id, change.key, change.new_value or "", change.changed_by, at,
        )  # fmt: skip
        await c.execute(
            "INSERT INTO settings_changes (team_id, key, old_value, new_value, changed_by,"
            " changed_at) VALUES (?, ?, ?, ?, ?, ?)",
            team_id, change.key, change.old_value, change.new_value, change.changed_by, at,
        )  # fmt: skip


def initial_settings(settings: Settings) -> BudgetSettings:
    """The environment's values, which apply to every key an admin has not saved yet."""
    return BudgetSettings(
        workspace_monthly_usd=settings.budget_workspace_monthly_usd or None,
        user_daily_usd=settings.budget_user_daily_usd or None,
    )
