"""Admins govern spend from Slack, through the real app over both transports: the Budgets
button on an admin's Home opens the modal, a valid submission is stored (audited) and shown
on Home, a bad one gets errors in the modal, a member can neither open nor submit it, and the
budgets it sets are what the next run is admitted under: on every instance, after a restart,
in the channels the admins allow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from blocks.governance import BLOCK_ALLOWED, BLOCK_USER, BLOCK_WORKSPACE, OPEN_BUDGETS_ACTION
from bot.ledger import BudgetSettings, initial_settings
from bot.sandbox.slack.server import SlackSandbox
from bot.sandbox.slack.views import SubmissionResult
from tests.harness import Mode, Stack, running_stack
from tests.ledger.conftest import fresh_postgres_schema

QUESTION = "Design a REST API for a social network"


def shown(message: Any) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


def said(stack: Stack, channel_id: str) -> list[Any]:
    """What the bot posted in a channel, threads included."""
    return [m for m in stack.slack.workspace.history.get(channel_id, []) if m.bot_id]


async def open_home(stack: Stack, user_id: str) -> dict[str, Any]:
    before = stack.slack.workspace.home_views.get(user_id)
    event = {"type": "app_home_opened", "user": user_id, "channel": "D0HOME", "tab": "home"}
    if stack.events_url is None:
        await stack.slack.send_event(event)
    else:
        await stack.slack.post_event_http(stack.events_url, event)
    async with asyncio.timeout(10):
        # `is`: publishing the same view again stores a new, equal HomeView.
        while stack.slack.workspace.home_views.get(user_id) is before:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return stack.slack.workspace.home_views[user_id].view


async def open_budgets(stack: Stack, user_id: str = "U0ADMIN") -> str:
    await open_home(stack, user_id)
    await stack.slack.click_home_button(user_id, OPEN_BUDGETS_ACTION, url=stack.events_url)
    async with asyncio.timeout(10):
        while not stack.slack.open_modals(user_id):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return stack.slack.open_modals(user_id)[-1].id


async def submit(stack: Stack, view_id: str, **typed: Any) -> SubmissionResult:
    return await stack.slack.submit_modal(view_id, typed, url=stack.events_url)


async def saved(stack: Stack) -> BudgetSettings:
    return await stack.services.governance.budget_settings(
        "T0SANDBOX", initial_settings(stack.settings)
    )


async def reply_to(stack: Stack, text: str, user_id: str = "U0ALICE", **where: str) -> str:
    before = len(stack.slack.ephemerals(user_id))
    await stack.command(text, user_id=user_id, **where)
    async with asyncio.timeout(10):
        while len(stack.slack.ephemerals(user_id)) == before:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return shown(stack.slack.ephemerals(user_id)[-1])


async def admitted_and_done(stack: Stack, *, runs: int) -> None:
    """Wait for `runs` admitted runs to end (`Stack.settle` stops at the first ephemeral)."""
    async with asyncio.timeout(30):
        while stack.services.runs.admitted < runs:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await stack.services.runs.wait_idle()


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_an_admin_sets_a_budget_in_the_modal_and_a_members_next_run_is_refused(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        home = json.dumps(await open_home(stack, "U0ADMIN"))
        assert OPEN_BUDGETS_ACTION in home and "No changes yet" in home
        view_id = await open_budgets(stack)
        result = await submit(stack, view_id, **{BLOCK_USER: "0.01"})
        assert result.outcome == "closed"
        async with asyncio.timeout(10):
            while "$0.0100" not in json.dumps(stack.slack.workspace.home_views["U0ADMIN"].view):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        home = json.dumps(stack.slack.workspace.home_views["U0ADMIN"].view)
        refusal = await reply_to(stack, QUESTION)
        changes = await stack.services.governance.changes("T0SANDBOX")
    assert "Last changes" in home and "<@U0ADMIN>" in home
    assert [(c.key, c.old_value, c.new_value, c.changed_by) for c in changes] == [
        ("user_daily_usd", None, "0.01", "U0ADMIN")
    ]
    # The refusal gives the figures, when the budget resets and who can raise it.
    assert "daily budget of $0.0100" in refusal
    assert "It resets" in refusal and "UTC" in refusal
    assert "<@U0ADMIN>" in refusal and "<@U0OWNER>" in refusal
    assert stack.claude.requests == []


async def test_bad_values_are_shown_under_their_inputs_and_nothing_is_saved(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        view_id = await open_budgets(stack)
        result = await submit(
            stack,
            view_id,
            **{BLOCK_USER: "-5", BLOCK_WORKSPACE: "12.345678", "thresholds": "50, 150"},
        )
        too_large = await submit(stack, view_id, **{BLOCK_WORKSPACE: "1e20"})
        still_open = stack.slack.open_modals("U0ADMIN")
        after = await saved(stack)
    assert result.outcome == "errors"
    assert set(result.errors) == {BLOCK_USER, BLOCK_WORKSPACE, "thresholds"}
    assert "above $0" in result.errors[BLOCK_USER]
    assert "4 decimal places" in result.errors[BLOCK_WORKSPACE]
    assert (
        too_large.outcome == "errors" and "at most $1,000,000" in too_large.errors[BLOCK_WORKSPACE]
    )
    assert [m.id for m in still_open] == [view_id]
    assert after == BudgetSettings()


async def test_a_member_can_neither_open_nor_submit_the_budgets_modal(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        member_home = json.dumps(await open_home(stack, "U0BOB"))
        assert OPEN_BUDGETS_ACTION not in member_home
        view_id = await open_budgets(stack)  # an admin's modal …
        modal = stack.slack.views.modals[view_id]
        # … whose submission a member forges: same view, a member's identity, a budget of 0.01.
        forged = {
            "type": "view_submission",
            "team": {"id": "T0SANDBOX", "domain": "sandbox"},
            "user": {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0SANDBOX"},
            "api_app_id": "A0ORCH",
            "trigger_id": stack.slack.triggers.issue("U0BOB"),
            "view": {
                **stack.slack.views.view_api(modal),
                "state": {
                    "values": {BLOCK_USER: {"value": {"type": "number_input", "value": "0.01"}}}
                },
            },
        }
        answer = await stack.slack.send_interactive(forged)
        # And a forged click on the Budgets button opens nothing for a member.
        home_view = stack.slack.workspace.home_views["U0ADMIN"]
        click = {
            "type": "block_actions",
            "user": {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0SANDBOX"},
            "team": {"id": "T0SANDBOX", "domain": "sandbox"},
            "api_app_id": "A0ORCH",
            "trigger_id": stack.slack.triggers.issue("U0BOB"),
            "container": {"type": "view", "view_id": home_view.id},
            "view": {**home_view.view, "id": home_view.id},
            "actions": [{"action_id": OPEN_BUDGETS_ACTION, "block_id": "orchestrate.budgets",
                         "type": "button", "action_ts": "1.0"}],
        }  # fmt: skip
        await stack.slack.send_interactive(click)
        await asyncio.sleep(0.2)
        after = await saved(stack)
        opened = stack.slack.calls_to("views.open")
    assert answer is not None and answer["response_action"] == "errors"
    assert "Only workspace admins" in json.dumps(answer)
    assert after == BudgetSettings()
    assert stack.slack.open_modals("U0BOB") == []
    assert len(opened) == 1  # the admin's own


async def test_runs_work_only_in_the_channels_admins_allow(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        view_id = await open_budgets(stack)
        assert (await submit(stack, view_id, **{BLOCK_ALLOWED: ["G0TEAM"]})).outcome == "closed"
        elsewhere = await reply_to(stack, QUESTION, channel_id="C0GENERAL")
        await stack.command(QUESTION, channel_id="G0TEAM")
        await admitted_and_done(stack, runs=1)
        _, replies = stack.thread("G0TEAM")
    assert "not enabled in this channel" in elsewhere and "<#G0TEAM>" in elsewhere
    assert stack.slack.messages("C0GENERAL") == []
    assert any("Review by" in r.text for r in replies)


async def test_a_bare_mention_outside_the_allow_list_is_answered_privately(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        view_id = await open_budgets(stack)
        assert (await submit(stack, view_id, **{BLOCK_ALLOWED: ["G0TEAM"]})).outcome == "closed"
        await stack.slack.mention(text="@orchestrate", channel_id="C0GENERAL")
        await stack.slack.mention(text="@orchestrate", channel_id="G0TEAM")
        async with asyncio.timeout(10):
            while not stack.slack.ephemerals("U0ALICE") or not said(stack, "G0TEAM"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        told = stack.slack.ephemerals("U0ALICE")
        said_here = said(stack, "C0GENERAL")
        said_there = [shown(m) for m in said(stack, "G0TEAM")]
    # Only the mentioner hears, in private, where the bot works; the channel hears nothing.
    assert len(told) == 1 and told[0].channel == "C0GENERAL"
    assert "not enabled in this channel" in shown(told[0]) and "<#G0TEAM>" in shown(told[0])
    assert said_here == []
    # Where it is allowed, the help is posted as before.
    assert len(said_there) == 1 and "How to use it" in said_there[0]


async def test_budgets_survive_a_restart(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        view_id = await open_budgets(stack)
        await submit(stack, view_id, **{BLOCK_WORKSPACE: "7.25"})
        url = stack.settings.database_url
    async with running_stack(tmp_path, database_url=url) as stack:
        after = await saved(stack)
        home = json.dumps(await open_home(stack, "U0ADMIN"))
    assert after.workspace_monthly_usd == Decimal("7.25")
    assert "$7.2500" in home


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


async def test_two_instances_on_postgresql_share_the_budgets(
    tmp_path: Path, postgres_url: str
) -> None:
    async with (
        SlackSandbox() as slack,
        running_stack(tmp_path / "a", slack=slack, database_url=postgres_url) as first,
        running_stack(tmp_path / "b", slack=slack, database_url=postgres_url) as second,
    ):
        await slack.wait_connected(count=2)
        view_id = await open_budgets(first)
        await submit(first, view_id, **{BLOCK_USER: "0.01"})
        # Slack spreads commands over both connections: each instance refuses one.
        refusals = [await reply_to(first, QUESTION) for _ in range(2)]
        seen = [await s.services.governance.budget_settings("T0SANDBOX", BudgetSettings())
                for s in (first, second)]  # fmt: skip
    assert all("daily budget of $0.0100" in r for r in refusals)
    assert seen[0] == seen[1] and seen[0].user_daily_usd == Decimal("0.01")
    assert first.claude.requests == [] and second.claude.requests == []


async def test_a_replayed_budgets_submission_takes_effect_once(tmp_path: Path) -> None:
    """Captured, signed and sent again inside Slack's five minutes, after another admin's
    change: it must not put the old budget back, logged as its author's change."""
    from bot.sandbox.slack.payloads import form_body, post_signed
    from bot.sandbox.slack.views import view_submission_payload

    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        slack = stack.slack
        view_id = await open_budgets(stack, "U0ADMIN")
        modal = slack.views.modals[view_id]
        payload = view_submission_payload(
            slack.workspace,
            slack.views,
            modal,
            {BLOCK_USER: "0.01"},
            slack.triggers.issue("U0ADMIN"),
        )
        body = form_body({"payload": json.dumps(payload, separators=(",", ":"))})
        captured = slack.signed_request(body)  # the request as it crossed the wire
        status, first, _, _ = await post_signed(stack.events_url, body, captured)
        assert status == 200 and "errors" not in first
        slack.views.apply_submission_response(modal, {})
        later = await open_budgets(stack, "U0OWNER")
        assert (await submit(stack, later, **{BLOCK_USER: "5"})).outcome == "closed"

        status, replayed, _, _ = await post_signed(stack.events_url, body, captured)
        after = await saved(stack)
        changes = await stack.services.governance.changes("T0SANDBOX", limit=10)
    assert status == 200 and "changed since you opened this form" in replayed
    assert after.user_daily_usd == Decimal("5")
    assert [(c.new_value, c.changed_by) for c in changes] == [("5", "U0OWNER"), ("0.01", "U0ADMIN")]


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_form_opened_before_another_admins_save_is_refused_until_reopened(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        hers = await open_budgets(stack, "U0ADMIN")
        his = await open_budgets(stack, "U0OWNER")
        assert (await submit(stack, his, **{BLOCK_WORKSPACE: "50"})).outcome == "closed"
        stale = await submit(stack, hers, **{BLOCK_USER: "0.01"})
        between = await saved(stack)
        stack.slack.views.apply_submission_response(stack.slack.views.modals[hers], {})
        reopened = await open_budgets(stack, "U0ADMIN")
        fresh = await submit(stack, reopened, **{BLOCK_USER: "0.01"})
        after = await saved(stack)
    assert stale.outcome == "errors"
    assert "changed since you opened this form" in stale.errors[BLOCK_WORKSPACE]
    assert between == BudgetSettings(workspace_monthly_usd=Decimal("50"))
    assert fresh.outcome == "closed"
    # Reopened, the form shows his change, which her save keeps.
    assert after == BudgetSettings(
        workspace_monthly_usd=Decimal("50"), user_daily_usd=Decimal("0.01")
    )


async def test_budgets_the_ledger_cannot_take_are_answered_in_the_modal(tmp_path: Path) -> None:
    from tests.slack.test_ledger_outages import full_disk_outage

    async with (
        full_disk_outage(tmp_path) as (url, fail, recover),
        running_stack(tmp_path, database_url=url) as stack,
    ):
        view_id = await open_budgets(stack)
        await fail()
        refused = await submit(stack, view_id, **{BLOCK_USER: "0.01"})
        await recover()
        saved_then = await submit(stack, view_id, **{BLOCK_USER: "0.01"})
        after = await saved(stack)
    assert refused.outcome == "errors"
    assert "cannot reach its ledger" in refused.errors[BLOCK_WORKSPACE]
    assert saved_then.outcome == "closed"
    assert after.user_daily_usd == Decimal("0.01")
