"""The weekly digest as operators run it: two real `orchestrate-bot serve` processes on one
ledger, the digest's schedule shortened to every two seconds; each period fired posts one
digest, whichever process fires it (both poll the schedule, `bot.slack.workflows`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.ledger import BudgetSettings, initial_settings, open_ledger
from bot.slack.budget_alerts import DIGEST_SCHEDULE
from tests.harness import stack_settings
from tests.ops.test_durable_runs import FAST, bots, ledger_rows
from tests.ops.test_fail_fast import sandboxes, stack_env
from tests.slack.test_alerts_and_reports import seed_run, shown

EVERY_2_S = "*/2 * * * * *"


async def test_two_instances_post_the_digest_once_per_period_of_its_schedule(
    tmp_path: Path,
) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        url = f"sqlite:///{tmp_path / 'cli.db'}"  # the ledger `stack_env` gives the bots
        settings = stack_settings(slack, claude, tmp_path, database_url=url)
        await seed_run(url, settings, user_id="U0ALICE", cost=Decimal("0.10"),
                       at=datetime.now(UTC) - timedelta(days=7))  # fmt: skip
        async with open_ledger(url) as ledger:
            await ledger.governance.save(
                "T0SANDBOX", BudgetSettings(alert_channel="C0GENERAL"),
                changed_by="U0ADMIN", defaults=initial_settings(settings),
            )  # fmt: skip
        env = stack_env(tmp_path, slack, claude, ORCHESTRATE_DIGEST_CRON=EVERY_2_S, **FAST)
        bots_ = [await serve(env, tmp_path, name) for name in ("one", "two")]
        await slack.wait_connected(timeout=60, count=2)
        await asyncio.sleep(12)
        for bot in bots_:
            await bot.stop()
        posted = [m for m in slack.messages("C0GENERAL") if "Weekly digest" in shown(m)]
    ran = ledger_rows(
        tmp_path / "cli.db.engine.db",
        "SELECT workflow_uuid, status, executor_id FROM workflow_status "
        "WHERE name = 'orchestrate.weekly_digest'",
    )
    done = [r for r in ran if r[1] == "SUCCESS"]
    by_executor = Counter(r[2] for r in done)
    print(f"periods fired: {len(ran)}, finished: {len(done)}, by instance: {dict(by_executor)}, "
          f"digests posted: {len(posted)}")  # fmt: skip
    assert len(done) >= 3, ran
    assert all(wid.startswith(f"sched-{DIGEST_SCHEDULE}-") for wid, _, _ in ran)
    # One digest per period fired (one cut off by the stop may have posted before it ended).
    assert len(done) <= len(posted) <= len(ran), (ran, len(posted))
