"""A second instance starting on the ledger a first one is using, mid-run: the first one's run
goes on and finishes as if alone (no "interrupted" in its thread, its reservation counted
throughout), and every call the Claude stand-in served is in the ledger once.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from bot.ledger import BudgetRefusal, Ledger
from bot.services import open_services
from tests.harness import running_stack
from tests.slack.test_ledger_outages import assert_thread_complete, ledger_request_ids

QUESTION = "Design a REST API for a social network"


async def held(ledger: Ledger) -> Decimal:
    probe = await ledger.runs.reserve_run(
        team_id="T0SANDBOX", channel_id="C0GENERAL", user_id="U0PROBE", question="q",
        worst_case_usd=Decimal("0.01"), user_budget=None, workspace_budget=Decimal(0),
    )  # fmt: skip
    assert isinstance(probe, BudgetRefusal)
    return probe.reserved_usd


async def test_a_second_instance_starting_mid_run_leaves_the_run_to_finish(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as first:
        first.claude.add_rule(role="example", delay_s=1.5)
        await first.command(QUESTION)
        async with asyncio.timeout(30):
            while not any(r.role == "example" for r in first.claude.messages()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        async with open_services(first.settings) as second:
            assert await held(second.ledger) > 0  # the first one's run still holds its budget
            await first.services.runs.wait_idle()

        assert_thread_complete(first)
        _, replies = first.thread()
        assert not any("interrupted" in r.text.lower() for r in replies)
        served = sorted(r.request_id for r in first.claude.messages())
        assert await ledger_request_ids(first.services.ledger) == served
        assert await held(first.services.ledger) == 0
