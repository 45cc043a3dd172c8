"""Instances sharing one ledger: a starting instance leaves a live one's runs alone, and the
runs of an instance whose heartbeat stops are taken over and finished by a live one; the
frozen one, once woken, acts for them no more and stops.

The first instance is a real `orchestrate-bot serve` process in the middle of a run (its
examples hang); the second is the same services, opened in the test process on the same
SQLite file. SIGSTOP freezes the first without ending its process, so only its silence, not
a vanished process id, can tell the second that it is dead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

from bot.ledger import BudgetRefusal, Ledger
from bot.sandbox.slack.server import SlackSandbox
from bot.services import open_services
from bot.settings import Settings
from tests.cli.test_cli import bot_mid_run, run_statuses

FAST_BEATS = {"ORCHESTRATE_HEARTBEAT_S": "0.5", "ORCHESTRATE_INSTANCE_TTL_S": "1.5"}


async def held(ledger: Ledger) -> Decimal:
    """What runs in progress hold against the workspace's month, as a budget check sees it."""
    probe = await ledger.runs.reserve_run(
        team_id="T0SANDBOX", channel_id="C0GENERAL", user_id="U0PROBE", question="q",
        worst_case_usd=Decimal("0.01"), user_budget=None, workspace_budget=Decimal(0),
    )  # fmt: skip
    assert isinstance(probe, BudgetRefusal)
    return probe.reserved_usd


def notices(slack: SlackSandbox) -> int:
    top = slack.messages("C0GENERAL")[-1]
    return sum("interrupted" in r.text.lower() for r in slack.replies("C0GENERAL", top.ts))


async def test_a_second_instance_starting_leaves_the_first_ones_live_run_alone(
    tmp_path: Path,
) -> None:
    async with bot_mid_run(tmp_path) as first:
        settings = Settings.from_env(first.env, dotenv=None)
        async with open_services(settings) as second:
            await asyncio.sleep(1.0)
            assert run_statuses(tmp_path / "cli.db") == ["running"]
            assert await held(second.ledger) > 0  # its reservation still counts
        assert notices(first.slack) == 0
        assert first.bot.returncode is None


async def test_a_frozen_instances_run_is_finished_by_a_live_one_and_the_woken_one_stops(
    tmp_path: Path,
) -> None:
    async with bot_mid_run(tmp_path, **FAST_BEATS) as frozen:
        assert frozen.bot.pid is not None
        settings = Settings.from_env(frozen.env, dotenv=None)
        try:
            async with open_services(settings) as live:
                assert run_statuses(tmp_path / "cli.db") == ["running"]
                frozen.claude.clear_rules()  # the live instance's calls answer at once
                os.kill(frozen.bot.pid, signal.SIGSTOP)  # alive, but it beats no more
                stopped = time.monotonic()
                async with asyncio.timeout(15):  # the TTL plus a beat, and the run's rest
                    while run_statuses(tmp_path / "cli.db") != ["finished"]:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                # Not before its last beat had aged past the TTL (1.5 s, beats every 0.5 s).
                assert time.monotonic() - stopped > 0.9
                await live.runs.wait_idle()
                assert await held(live.ledger) == 0
                top = frozen.slack.messages("C0GENERAL")[-1]
                seen = len(frozen.slack.replies("C0GENERAL", top.ts))
                edits = len(frozen.slack.calls_to("chat.update"))
                os.kill(frozen.bot.pid, signal.SIGCONT)
                # It finds itself declared dead at its next beat, and stops by itself.
                code = await asyncio.wait_for(frozen.bot.wait(), 30)
                assert code == 0
                assert len(frozen.slack.replies("C0GENERAL", top.ts)) == seen
                assert len(frozen.slack.calls_to("chat.update")) == edits
                assert notices(frozen.slack) == 0
                assert "Done" in frozen.slack.messages("C0GENERAL")[-1].text + str(
                    frozen.slack.messages("C0GENERAL")[-1].blocks
                )
        finally:
            if frozen.bot.returncode is None:
                os.kill(frozen.bot.pid, signal.SIGKILL)
