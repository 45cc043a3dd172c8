"""Costs and budgets as a workspace meets them: `/orchestrate costs`, App Home, refusals, alerts.

Admin views are decided on the server at every request (workspace admins and owners from
`users.info`, plus ORCHESTRATE_ADMINS); a member never sees a workspace figure.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.core.usage import CallRecord, TokenUsage
from bot.ledger import open_ledger
from tests.harness import Stack, running_stack

QUESTION = "Design a REST API for a social network"


def shown(message: Any) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


async def seed_spending(stack: Stack, *, user_id: str, cost_usd: Decimal) -> None:
    """A finished past run that cost `cost_usd`, written as the app would have."""
    async with open_ledger(stack.settings.database_url) as ledger:
        run_id = await ledger.runs.start_run(
            team_id="T0SANDBOX",
            channel_id="C0GENERAL",
            user_id=user_id,
            question="earlier question",
        )
        usage = TokenUsage(output_tokens=1000)
        call = CallRecord(
            role="plan",
            model="claude-opus-5-5",
            usage=usage,
            cost_usd=cost_usd,
            latency_s=1.0,
            outcome="ok",
        )
        await ledger.runs.record_call(run_id, call)
        await ledger.runs.finish_run(run_id, "finished", elapsed_s=1.0)


async def costs_reply(stack: Stack, user_id: str, period: str = "month") -> str:
    before = len(stack.slack.ephemerals(user_id))
    await stack.command(f"costs {period}", user_id=user_id)
    async with asyncio.timeout(10):
        while len(stack.slack.ephemerals(user_id)) == before:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return shown(stack.slack.ephemerals(user_id)[-1])


async def test_an_admin_sees_the_workspace_and_a_member_only_their_own_usage(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await seed_spending(stack, user_id="U0ALICE", cost_usd=Decimal("1.2345"))
        await seed_spending(stack, user_id="U0BOB", cost_usd=Decimal("0.0100"))

        admin = await costs_reply(stack, "U0ADMIN")
        owner = await costs_reply(stack, "U0OWNER")
        bob = await costs_reply(stack, "U0BOB")
    assert "$1.2445" in admin and "U0ALICE" in admin
    assert "$1.2445" in owner
    assert "$0.0100" in bob
    # Nothing of the workspace leaks to a member: not the total, not Alice, not her spend.
    assert "$1.2445" not in bob and "1.2345" not in bob and "U0ALICE" not in bob


async def test_orchestrate_admins_get_the_admin_view(tmp_path: Path) -> None:
    async with running_stack(tmp_path, admins=frozenset({"U0BOB"})) as stack:
        await seed_spending(stack, user_id="U0ALICE", cost_usd=Decimal("2.5000"))
        bob = await costs_reply(stack, "U0BOB")
    assert "$2.5000" in bob


async def test_a_bad_costs_period_says_what_to_type(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        reply = await costs_reply(stack, "U0ADMIN", period="fortnight")
    assert "7d" in reply and "month" in reply


async def test_app_home_shows_admins_the_workspace_and_members_their_own(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await seed_spending(stack, user_id="U0ALICE", cost_usd=Decimal("3.0000"))
        for user in ("U0ADMIN", "U0BOB"):
            await stack.slack.send_event(
                {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
            )
        async with asyncio.timeout(10):
            while len(stack.slack.workspace.home_views) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        views = stack.slack.workspace.home_views
        admin = json.dumps(views["U0ADMIN"].view)
        member = json.dumps(views["U0BOB"].view)
    assert "$3.0000" in admin
    assert "$3.0000" not in member and "U0ALICE" not in member
    assert "/orchestrate" in member


async def test_a_run_over_the_user_budget_is_refused_before_any_model_call(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, budget_user_daily_usd=Decimal("0.05")) as stack:
        await stack.command(QUESTION)
        await stack.settle()
        refusal = stack.slack.ephemerals("U0ALICE")
    assert len(refusal) == 1
    text = shown(refusal[0])
    assert "daily" in text and "$0.0500" in text
    assert stack.claude.requests == []
    assert stack.slack.messages("C0GENERAL") == []


async def test_crossing_80_percent_of_the_monthly_budget_dms_each_admin_once(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, budget_workspace_monthly_usd=Decimal("3.00"), admins=frozenset({"U0BOB"})
    ) as stack:
        # Just under 80%, with room left for two runs' worst case (about $0.42 each).
        await seed_spending(stack, user_id="U0ALICE", cost_usd=Decimal("2.395"))
        await stack.command(QUESTION)
        await stack.settle()
        await stack.command(QUESTION)
        await stack.settle(runs=2)

        ims = {
            user: stack.slack.workspace.im_with(user).id
            for user in ("U0ADMIN", "U0OWNER", "U0BOB", "U0ALICE")
        }
        dms = {
            user: [m for m in stack.slack.messages(im) if "budget" in shown(m)]
            for user, im in ims.items()
        }
    assert {u: len(m) for u, m in dms.items()} == {
        "U0ADMIN": 1,
        "U0OWNER": 1,
        "U0BOB": 1,
        "U0ALICE": 0,
    }
    assert "$3.0000" in shown(dms["U0ADMIN"][0]) and "80%" in shown(dms["U0ADMIN"][0])


async def test_every_figure_survives_a_restart(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.command(QUESTION)
        await stack.settle()
        before = await costs_reply(stack, "U0ADMIN")
        url = stack.settings.database_url
    async with running_stack(tmp_path, database_url=url) as stack:
        after = await costs_reply(stack, "U0ADMIN")
    assert before == after


async def test_costs_replies_name_the_period_they_cover(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        week = await costs_reply(stack, "U0ADMIN", period="week")
        last_month = await costs_reply(stack, "U0ADMIN", period="last-month")
        zero = await costs_reply(stack, "U0ADMIN", period="0d")
    assert "last 7 days" in week
    assert "orchestrate spend · " in last_month and " to date" not in last_month
    assert "use 1d to 3660d" in zero


async def test_a_member_refused_by_the_workspace_budget_sees_no_workspace_figure(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, budget_workspace_monthly_usd=Decimal("2.00")) as stack:
        await seed_spending(stack, user_id="U0ALICE", cost_usd=Decimal("1.9123"))
        await stack.command(QUESTION, user_id="U0BOB")
        await stack.settle()
        refusal = stack.slack.ephemerals("U0BOB")
    assert len(refusal) == 1
    text = shown(refusal[0])
    assert "monthly budget" in text
    # Not the limit, not what Alice spent, not what is left.
    for figure in ("$2.0000", "$1.9123", "$0.0877", "spent", "held"):
        assert figure not in text
    assert stack.claude.requests == []


async def test_costs_answers_with_an_apology_when_the_ledger_fails(tmp_path: Path) -> None:
    import sqlite3

    async with running_stack(tmp_path) as stack:
        db_path = stack.settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(db_path) as db:  # the ledger breaks under the running app
            db.execute("ALTER TABLE calls RENAME TO calls_gone")
        db.close()
        reply = await costs_reply(stack, "U0ADMIN")
    assert "Sorry, something went wrong on our side while reading the costs" in reply
    assert "/orchestrate costs" in reply
