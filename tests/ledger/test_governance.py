"""Budget settings in the ledger, on both backends: environment defaults until an admin saves,
every change audited, seen at once by another connection (a restart, a second instance), and
once-only notices across instances."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.ledger import BudgetSettings, SettingsChanged, open_ledger

ENV = BudgetSettings(workspace_monthly_usd=Decimal("100"), user_daily_usd=Decimal("2"))
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


async def test_environment_values_apply_until_an_admin_saves(ledger_url: str) -> None:
    async with open_ledger(ledger_url) as ledger:
        assert await ledger.governance.budget_settings("T1", ENV) == ENV
        saved = BudgetSettings(
            workspace_monthly_usd=Decimal("40.50"),
            user_daily_usd=None,
            channel_monthly_usd=(("C0GENERAL", Decimal("10")),),
            alert_thresholds_pct=(25, 90),
            alert_channel="C0ALERTS",
            allowed_channels=("C0GENERAL", "C0OPS"),
        )
        changes = await ledger.governance.save("T1", saved, changed_by="U0ADMIN", defaults=ENV)
        # The stored value wins over the environment, an explicit "no budget" included.
        assert await ledger.governance.budget_settings("T1", ENV) == saved
        assert await ledger.governance.budget_settings("T2", ENV) == ENV
    by_key = {c.key: (c.old_value, c.new_value, c.changed_by) for c in changes}
    assert by_key["workspace_monthly_usd"] == ("100", "40.50", "U0ADMIN")
    assert by_key["user_daily_usd"] == ("2", None, "U0ADMIN")
    assert by_key["channel_monthly_usd:C0GENERAL"] == (None, "10", "U0ADMIN")
    assert by_key["allowed_channels"] == (None, "C0GENERAL,C0OPS", "U0ADMIN")


async def test_every_change_is_audited_and_a_new_connection_sees_it(ledger_url: str) -> None:
    async with open_ledger(ledger_url) as first, open_ledger(ledger_url) as second:
        one = BudgetSettings(channel_monthly_usd=(("C1", Decimal("5")), ("C2", Decimal("7"))))
        await first.governance.save("T1", one, changed_by="U0ADA", defaults=ENV, now=NOW)
        two = BudgetSettings(channel_monthly_usd=(("C1", Decimal("6")),))
        later = NOW.replace(hour=10)
        await second.governance.save("T1", two, changed_by="U0OLIVE", defaults=ENV, now=later)
        seen_by_first = await first.governance.budget_settings("T1", ENV)
        history = await first.governance.changes("T1", limit=20)
        unchanged = await second.governance.save("T1", two, changed_by="U0OLIVE", defaults=ENV)
    assert seen_by_first.channel_monthly_usd == (("C1", Decimal("6")),)
    assert unchanged == ()
    latest = {(c.key, c.old_value, c.new_value, c.changed_by) for c in history[:2]}
    assert latest == {
        ("channel_monthly_usd:C1", "5", "6", "U0OLIVE"),
        ("channel_monthly_usd:C2", "7", None, "U0OLIVE"),
    }
    assert history[0].changed_at == later


async def test_a_save_based_on_an_older_version_is_refused_and_saves_nothing(
    ledger_url: str,
) -> None:
    async with open_ledger(ledger_url) as first, open_ledger(ledger_url) as second:
        opened = await first.governance.version("T1")
        mine = BudgetSettings(user_daily_usd=Decimal("0.01"))
        theirs = BudgetSettings(user_daily_usd=Decimal("5"))
        await second.governance.save(
            "T1", theirs, changed_by="U0OLIVE", defaults=ENV, based_on=opened
        )
        with pytest.raises(SettingsChanged):
            await first.governance.save(
                "T1", mine, changed_by="U0ADA", defaults=ENV, based_on=opened
            )
        now = await first.governance.version("T1")
        # Saved once at a version, a second save based on it (a replay) is refused too.
        await first.governance.save("T1", mine, changed_by="U0ADA", defaults=ENV, based_on=now)
        with pytest.raises(SettingsChanged):
            await first.governance.save(
                "T1", theirs, changed_by="U0ADA", defaults=ENV, based_on=now
            )
        history = await first.governance.changes("T1", limit=20)
        other_team = await first.governance.version("T2")
    assert [(c.new_value, c.changed_by) for c in history if c.key == "user_daily_usd"] == [
        ("0.01", "U0ADA"),
        ("5", "U0OLIVE"),
    ]
    assert other_team == "0"  # another workspace's saves do not move this one's version
