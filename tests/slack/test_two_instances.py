"""Two bot processes behind one Slack app, sharing one PostgreSQL ledger.

Both run `orchestrate-bot serve` for real (Socket Mode; the Slack sandbox spreads envelopes
across the two connections as Slack does). Sent a burst of commands at once, together they
admit exactly as many runs as the monthly budget can cover at their worst case, never more;
SIGTERM then stops each one cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.core.claude import Claude
from bot.core.pipeline import Pipeline
from bot.core.pricing import PriceTable
from bot.ledger import open_ledger
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox
from bot.settings import Settings
from tests.ledger.conftest import fresh_postgres_schema

QUESTION = "Design a REST API for a social network"
COMMANDS = 10
RUNS_THE_BUDGET_COVERS = 3


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


def worst_case() -> Decimal:
    settings = Settings()
    prices = PriceTable.load()
    claude = Claude(None, settings=settings, price=prices.cost)  # type: ignore[arg-type]
    pipeline = Pipeline(claude, settings=settings, prices=prices)
    cost = pipeline.worst_case_usd(QUESTION)
    assert cost is not None
    return cost


async def start_bot(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_two_processes_never_admit_more_runs_than_the_budget_covers(
    postgres_url: str,
) -> None:
    budget = worst_case() * RUNS_THE_BUDGET_COVERS + Decimal("0.01")
    async with (
        SlackSandbox() as slack,
        ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as claude,
    ):
        # Runs stay in flight until every command has been admitted or refused.
        claude.add_rule(role="example", delay_s=3.0)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "ANTHROPIC_", "BUDGET_", "ORCHESTRATE_"))
        } | {
            "SLACK_API_URL": slack.api_url,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "ANTHROPIC_BASE_URL": claude.base_url,
            "ANTHROPIC_API_KEY": claude.api_key,
            "DATABASE_URL": postgres_url,
            "BUDGET_WORKSPACE_MONTHLY_USD": str(budget),
            "ORCHESTRATE_SLACK_POSTS_PER_S": "50",
            "LOG_LEVEL": "WARNING",
        }
        bots = [await start_bot(env) for _ in range(2)]
        try:
            await slack.wait_connected(timeout=60, count=2)
            users = ["U0ALICE", "U0BOB", "U0ADMIN", "U0OWNER"]
            acks = await asyncio.gather(
                *(
                    slack.send_slash_command(text=QUESTION, user_id=users[i % len(users)])
                    for i in range(COMMANDS)
                )
            )
            assert not any(a.timed_out for a in acks)
            async with asyncio.timeout(60):
                while len(slack.ephemerals()) < COMMANDS - RUNS_THE_BUDGET_COVERS:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                while reviews(slack) < RUNS_THE_BUDGET_COVERS:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        finally:
            for bot in bots:
                if bot.returncode is None:
                    bot.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(bot.wait(), 60) for bot in bots]
            errors = [(await bot.stderr.read()).decode() for bot in bots if bot.stderr]

    assert codes == [0, 0], errors
    async with open_ledger(postgres_url) as ledger:
        report = await ledger.reports.summary(
            "T0SANDBOX", since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime.now(UTC)
        )
    assert report.runs == RUNS_THE_BUDGET_COVERS
    assert report.refused_runs == COMMANDS - RUNS_THE_BUDGET_COVERS
    assert report.total_usd <= budget
    # Both processes took commands (the sandbox alternates envelopes between connections).
    assert slack.socket.connections_opened >= 2


def reviews(slack: SlackSandbox) -> int:
    """How many runs have posted their review in #general."""
    replies = (r for m in slack.messages("C0GENERAL") for r in slack.replies("C0GENERAL", m.ts))
    return sum("Review by" in r.text for r in replies)
