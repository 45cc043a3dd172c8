"""Alerts where admins look and reports they can use, through the real app: threshold alerts
and the weekly digest in the alert channel, once with two instances running (the digest once
per period of its schedule, however often a period is fired); the costs CSV
uploaded to an admin's DM; and a $0.05 daily budget that admits the runs it can pay for and
stops the one that would cross it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS

from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import BudgetSettings, Reservation, initial_settings, open_ledger
from bot.ledger.periods import week_bounds
from bot.sandbox.slack.files import shared_files
from bot.sandbox.slack.server import SlackSandbox
from bot.settings import Settings, SettingsError
from bot.slack import engine
from bot.slack.budget_alerts import DIGEST_SCHEDULE
from tests.harness import Stack, running_stack
from tests.ledger.conftest import fresh_postgres_schema

QUESTION = "Design a REST API for a social network"


async def fire_digest(when: datetime) -> int:
    """Fire the digest's schedule for the scheduled time `when` (a tick of its cron), as the
    engine's scheduler does, under the same id: a time fired before (by the scheduler, or by
    this on any instance) runs nothing again. Returns once that workflow has ended, with how
    many were fired (0 when `when` is not a tick of the schedule)."""

    def backfill() -> list[Any]:
        return DBOS.backfill_schedule(
            DIGEST_SCHEDULE, when - timedelta(microseconds=1), when + timedelta(microseconds=1)
        )

    handles = await engine.outside(backfill)  # DBOS refuses a backfill inside a workflow
    for handle in handles:
        # Waited for on the loop, not in a thread: a test that times out cancels the wait,
        # where a thread polling a workflow that never ends would keep the process alive.
        waiting = await DBOS.retrieve_workflow_async(handle.get_workflow_id())
        await waiting.get_result()
    return len(handles)


def shown(message: Any) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


async def seed_run(
    url: str,
    settings: Settings,
    *,
    user_id: str,
    cost: Decimal,
    at: datetime | None = None,
    channel_id: str = "C0GENERAL",
) -> str:
    """A finished run of the configured models that cost `cost`, as the app writes one;
    returns its id."""
    async with open_ledger(url) as ledger:
        admitted = await ledger.runs.reserve_run(
            team_id="T0SANDBOX", channel_id=channel_id, user_id=user_id, question="earlier",
            worst_case_usd=Decimal("0.33"), user_budget=None, workspace_budget=None,
            models=",".join(settings.models), now=at,
        )  # fmt: skip
        assert isinstance(admitted, Reservation)
        await ledger.runs.set_thread(admitted.run_id, channel_id, "1.000001")
        call = CallRecord(
            role="plan",
            model="claude-opus-5-5",
            usage=TokenUsage(input_tokens=100, output_tokens=100),
            cost_usd=cost,
            latency_s=1.0,
            outcome="ok",
        )
        await ledger.runs.record_call(admitted.run_id, call, now=at)
        await ledger.runs.finish_run(admitted.run_id, "finished", elapsed_s=1.0, now=at)
    return admitted.run_id


async def save(stack: Stack, settings: BudgetSettings) -> None:
    await stack.services.governance.save(
        "T0SANDBOX", settings, changed_by="U0ADMIN", defaults=initial_settings(stack.settings)
    )


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


async def test_alerts_and_the_digest_are_posted_once_with_two_instances_running(
    tmp_path: Path, postgres_url: str
) -> None:
    async with (
        SlackSandbox() as slack,
        running_stack(tmp_path / "a", slack=slack, database_url=postgres_url) as first,
        running_stack(tmp_path / "b", slack=slack, database_url=postgres_url) as second,
    ):
        await slack.wait_connected(count=2)
        now = datetime.now(UTC)
        monday = week_bounds(now)[0]  # this week's tick of the digest's schedule
        await save(first, BudgetSettings(workspace_monthly_usd=Decimal("1.00"),
                                         alert_channel="C0GENERAL"))  # fmt: skip
        await seed_run(postgres_url, first.settings, user_id="U0BOB", cost=Decimal("0.85"))
        last_week = now - timedelta(days=7)
        voted = await seed_run(postgres_url, first.settings, user_id="U0ALICE",
                               cost=Decimal("0.10"), at=last_week, channel_id="G0TEAM")  # fmt: skip
        # Bob's 👍 on Alice's answer, as the button under the review records it.
        await first.services.feedback.vote(voted, "U0BOB", 1, now=last_week)
        # Both instances check at once, as after two runs ending together.
        told = await asyncio.gather(
            *(s.services.runs.on_finished("T0SANDBOX") for s in (first, second) * 2)  # type: ignore[misc]
        )
        # This week's digest fired four times at once, as by schedulers racing.
        fired = await asyncio.gather(*(fire_digest(monday) for _ in range(4)))
        posted = [shown(m) for m in slack.messages("C0GENERAL")]
    alerts = [p for p in posted if "passed" in p and "budget" in p]
    weekly = [p for p in posted if "Weekly digest" in p]
    # Callers that raced to the alert's workflow share its outcome (1 told); later ones, 0.
    assert len(alerts) == 1 and 1 in told and set(told) <= {0, 1}
    # 85% spent (95% from the 8th of a month on, when last week's run is this month's too):
    # 50% and 80% are both passed; one alert, for the highest, whoever claims it.
    month = Decimal("0.95") if last_week.month == now.month else Decimal("0.85")
    assert "passed 80%" in alerts[0] and f"${month}00" in alerts[0] and "$1.0000" in alerts[0]
    assert len(weekly) == 1 and fired == [1, 1, 1, 1]
    assert "<@U0ALICE>" in weekly[0] and "<#G0TEAM>" in weekly[0] and "$0.1000" in weekly[0]
    assert "Opus" in weekly[0]
    assert "👍 1 · 👎 0 · 100% satisfied" in weekly[0]


async def test_the_digest_is_posted_once_per_period_of_its_schedule_with_two_instances(
    tmp_path: Path,
) -> None:
    """A two-second schedule, two instances on one ledger: each period fired posts one
    digest (the instances share this process's engine: `tests/ops` runs two processes)."""
    shared = {"database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
              "digest_cron": "*/2 * * * * *"}  # fmt: skip
    async with (
        SlackSandbox() as slack,
        running_stack(tmp_path / "a", slack=slack, **shared) as first,
        running_stack(tmp_path / "b", slack=slack, **shared) as second,
    ):
        await save(first, BudgetSettings(alert_channel="C0GENERAL"))
        await seed_run(first.settings.database_url, first.settings, user_id="U0ALICE",
                       cost=Decimal("0.10"), at=datetime.now(UTC) - timedelta(days=7))  # fmt: skip
        assert second.services.digest is not first.services.digest
        await asyncio.sleep(7)
        ran = await DBOS.list_workflows_async(name="orchestrate.weekly_digest", status="SUCCESS")
        posted = [m for m in slack.messages("C0GENERAL") if "Weekly digest" in shown(m)]
    periods = {w.workflow_id for w in ran}
    assert len(ran) >= 2 and len(periods) == len(ran)
    assert all(p.startswith(f"sched-{DIGEST_SCHEDULE}-") for p in periods)
    # One digest per period fired (a period still running at the end may have posted too).
    assert len(ran) <= len(posted) <= len(ran) + 1


async def test_a_period_fired_twice_posts_its_digest_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await save(stack, BudgetSettings(alert_channel="C0GENERAL"))
        now = datetime.now(UTC)
        await seed_run(stack.settings.database_url, stack.settings, user_id="U0ALICE",
                       cost=Decimal("0.10"), at=now - timedelta(days=7))  # fmt: skip
        monday = week_bounds(now)[0]
        first = await fire_digest(monday)
        again = await fire_digest(monday)  # the same scheduled time, after it ran
        not_a_tick = await fire_digest(monday + timedelta(hours=1))
        posted = [m for m in stack.slack.messages("C0GENERAL") if "Weekly digest" in shown(m)]
    assert (first, again, not_a_tick) == (1, 1, 0)
    assert len(posted) == 1


async def test_a_public_alert_channel_the_bot_is_not_in_is_joined_to_post_there(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await save(stack, BudgetSettings(workspace_monthly_usd=Decimal("1.00"),
                                         alert_thresholds_pct=(50,),
                                         alert_channel="C0RANDOM"))  # fmt: skip
        await seed_run(stack.settings.database_url, stack.settings, user_id="U0ALICE",
                       cost=Decimal("0.60"))  # fmt: skip
        told = await stack.services.runs.on_finished("T0SANDBOX")  # type: ignore[misc]
        posted = [shown(m) for m in stack.slack.messages("C0RANDOM")]
        members = stack.slack.workspace.channels["C0RANDOM"].members
    assert told == 1 and len(posted) == 1 and "passed 50%" in posted[0]
    assert "U0BOT" in members  # joined: it can read the channel it posts in


async def test_without_an_alert_channel_alerts_go_to_each_admins_dm(tmp_path: Path) -> None:
    async with running_stack(tmp_path, admins=frozenset({"U0BOB"})) as stack:
        await save(stack, BudgetSettings(workspace_monthly_usd=Decimal("1.00"),
                                         alert_thresholds_pct=(50,)))  # fmt: skip
        url = stack.settings.database_url
        await seed_run(url, stack.settings, user_id="U0ALICE", cost=Decimal("0.60"))
        await stack.services.runs.on_finished("T0SANDBOX")  # type: ignore[misc]
        dms = {
            user: [shown(m) for m in stack.slack.messages(stack.slack.workspace.im_with(user).id)]
            for user in ("U0ADMIN", "U0OWNER", "U0BOB", "U0ALICE")
        }
    assert {user: len(messages) for user, messages in dms.items()} == {
        "U0ADMIN": 1, "U0OWNER": 1, "U0BOB": 1, "U0ALICE": 0,
    }  # fmt: skip
    assert "passed 50%" in dms["U0ADMIN"][0]


async def test_costs_csv_is_uploaded_to_the_admins_dm_and_refused_to_members(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        url = stack.settings.database_url
        await seed_run(url, stack.settings, user_id="U0ALICE", cost=Decimal("0.0123"))
        await seed_run(url, stack.settings, user_id="U0BOB", cost=Decimal("0.5"),
                       at=datetime.now(UTC) - timedelta(days=70))  # fmt: skip
        await stack.command("costs csv week", user_id="U0ADMIN")
        await stack.command("costs csv", user_id="U0BOB")
        async with asyncio.timeout(10):
            while len(stack.slack.ephemerals()) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        admin_reply = shown(stack.slack.ephemerals("U0ADMIN")[-1])
        member_reply = shown(stack.slack.ephemerals("U0BOB")[-1])
        dm = stack.slack.workspace.im_with("U0ADMIN").id
        shared = [shared_files(m) for m in stack.slack.messages(dm)]
        uploads = stack.slack.uploads
        methods = [c.method for c in stack.slack.calls]
    assert "in your DM" in admin_reply and "1 call" in admin_reply
    assert "Only workspace admins" in member_reply
    [upload] = uploads
    rows = list(csv.DictReader(io.StringIO(upload.text)))
    assert [r["user_id"] for r in rows] == ["U0ALICE"]  # the 70-day-old call is outside
    assert rows[0]["cost_usd"] == "0.012300000"
    assert shared == [[{"id": upload.id, "name": upload.filename, "title": upload.title}]]
    assert upload.filename.startswith("orchestrate-calls-") and upload.filename.endswith(".csv")
    assert methods.count("files.getUploadURLExternal") == 1
    assert methods.count("files.completeUploadExternal") == 1


async def test_a_5_cent_daily_budget_admits_what_it_can_pay_for_and_stops_the_crossing_run(
    tmp_path: Path,
) -> None:
    budget = Decimal("0.05")
    async with running_stack(tmp_path, budget_user_daily_usd=budget) as stack:
        url = stack.settings.database_url
        # A history of cheap runs of the same models: a run reserves their p95, not the
        # theoretical $0.42 that would refuse every run under a $0.05 budget.
        # (the last 100 runs count: 96 of these stay in them beside Alice's 4 runs.)
        for _ in range(100):
            await seed_run(url, stack.settings, user_id="U0BOB", cost=Decimal("0.001"))
        outcomes = [await attempt(stack)]
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first = await alices_day(stack, day)
        run_cost = first.total_usd
        plan_cost = next(r.cost_usd for r in first.by_role if r.role == "plan")
        # Earlier spend today, so that the budget runs out inside a later run's plan call:
        # that run passes its check, its plan crosses the budget, its next call is refused.
        runs_that_fit = 3
        earlier = budget - runs_that_fit * run_cost - plan_cost / 2
        await seed_run(url, stack.settings, user_id="U0ALICE", cost=earlier)
        for _ in range(6):
            outcomes.append(await attempt(stack))
            if outcomes[-1] == "refused":
                break
        mine = await alices_day(stack, day)
        refusal = shown(stack.slack.ephemerals("U0ALICE")[-1])
        _, stopped_thread = stack.thread()
    assert outcomes == ["finished"] * runs_that_fit + ["stopped", "refused"], outcomes
    stop_notice = "\n".join(shown(r) for r in stopped_thread)
    assert "budget of $0.0500 is used up" in stop_notice and "resets" in stop_notice
    assert "daily budget of $0.0500" in refusal and "It resets" in refusal
    # Spend passed the budget by the one call in flight when it was reached (the plan).
    assert budget <= mine.total_usd <= budget + plan_cost


async def attempt(stack: Stack) -> str:
    """Send the question; 'finished', 'stopped' (by its budget, mid-run) or 'refused'."""
    runs, replies_before = stack.services.runs.admitted, len(stack.slack.ephemerals("U0ALICE"))
    await stack.command(QUESTION)
    async with asyncio.timeout(30):
        while (  # noqa: ASYNC110
            stack.services.runs.admitted == runs
            and len(stack.slack.ephemerals("U0ALICE")) == replies_before
        ):
            await asyncio.sleep(0.02)
        await stack.services.runs.wait_idle()
    if len(stack.slack.ephemerals("U0ALICE")) > replies_before:
        return "refused"
    _, replies = stack.thread()
    return "stopped" if any("is used up" in shown(r) for r in replies) else "finished"


async def alices_day(stack: Stack, day: datetime) -> Any:
    async with open_ledger(stack.settings.database_url) as ledger:
        return await ledger.reports.summary(
            "T0SANDBOX", since=day, until=day + timedelta(days=1), user_id="U0ALICE"
        )


async def test_a_digest_schedule_that_is_no_cron_stops_the_start_in_one_line(
    tmp_path: Path,
) -> None:
    with pytest.raises(SettingsError, match="ORCHESTRATE_DIGEST_CRON: 'every monday'"):
        async with running_stack(tmp_path, digest_cron="every monday"):
            pass
