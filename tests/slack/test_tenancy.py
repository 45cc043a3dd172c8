"""One installed workspace: commands, events and App Home naming another team are refused.

The installed team is what `auth.test` says at start-up (T0SANDBOX in the sandbox); a request
carrying any other team id is answered without reading or spending anything.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from bot.sandbox.slack.payloads import event_callback, form_body, slash_command_payload
from tests.harness import running_stack
from tests.slack.test_costs_and_budgets import seed_spending

OTHER = "T0ELSEWHERE"
QUESTION = "Design a REST API for a social network"


def foreign_command(stack_slack: object, text: str, user_id: str = "U0ADMIN") -> dict[str, str]:
    from bot.sandbox.slack.server import SlackSandbox

    assert isinstance(stack_slack, SlackSandbox)
    entry = stack_slack.response_urls.issue(channel="C0GENERAL", user=user_id)
    payload = slash_command_payload(
        stack_slack.workspace,
        text=text,
        user_id=user_id,
        channel_id="C0GENERAL",
        command="/orchestrate",
        response_url=entry.url,
    )
    return payload | {"team_id": OTHER, "team_domain": "elsewhere"}


async def test_a_command_for_another_team_is_refused_without_a_run_or_a_figure(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await seed_spending(stack, user_id="U0ALICE", cost_usd=Decimal("4.2100"))
        for text in ("costs month", QUESTION):
            ack = await stack.slack.send_envelope(
                "slash_commands",
                foreign_command(stack.slack, text),
                accepts_response_payload=True,
            )
            assert ack.payload is not None
            assert "not installed for this workspace" in json.dumps(ack.payload)
            assert "$4.2100" not in json.dumps(ack.payload)
        await asyncio.sleep(0.3)
        assert stack.services.runs.admitted == 0
        assert stack.claude.requests == []
        assert stack.slack.messages("C0GENERAL") == []
        assert not [p for p in stack.slack.workspace.response_posts if "4.21" in json.dumps(p.body)]


async def test_an_event_for_another_team_opens_no_home_and_answers_no_mention(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        ws = stack.slack.workspace
        home = event_callback(ws, {"type": "app_home_opened", "user": "U0ADMIN", "tab": "home"})
        mention_msg = ws.post_as("U0ALICE", "C0GENERAL", "<@U0BOT> hi")
        mention = event_callback(
            ws,
            {
                "type": "app_mention",
                "user": "U0ALICE",
                "channel": "C0GENERAL",
                "text": "<@U0BOT> hi",
                "ts": mention_msg.ts,
            },
        )
        for payload in (home, mention):
            payload["team_id"] = OTHER
            payload["authorizations"][0]["team_id"] = OTHER
            ack = await stack.slack.send_envelope("events_api", payload)
            assert not ack.timed_out
        await asyncio.sleep(0.3)
    assert ws.home_views == {}
    assert stack.slack.replies("C0GENERAL", mention_msg.ts) == []


async def test_over_http_a_signed_command_for_another_team_gets_the_refusal(
    tmp_path: Path,
) -> None:
    import aiohttp

    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        body = form_body(foreign_command(stack.slack, "costs"))
        headers = stack.slack.signed_request(body)
        async with (
            aiohttp.ClientSession() as session,
            session.post(stack.events_url, data=body, headers=headers) as response,
        ):
            status, answer = response.status, await response.text()
    assert status == 200
    assert "not installed for this workspace" in answer
