"""Contract tests: buttons and feedback buttons on messages, as the Slack sandbox serves them.

Slack checks a message's interactive elements when it is posted (button text ≤ 75, values ≤
2,000, `context_actions` holds only feedback and icon buttons, at most five) and sends a click
as a `block_actions` payload naming the message, the channel, the clicker, a response_url and
a trigger_id; for feedback buttons the action carries the chosen button's value. Both
transports are driven with a real Bolt app.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextActionsBlock,
    FeedbackButtonObject,
    FeedbackButtonsElement,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack.server import SlackSandbox
from tests.sandbox.slack_errors import error_of


def message_blocks() -> list[dict[str, Any]]:
    """Built with slack_sdk's own models, so the shapes are the SDK's, not ours."""
    return [
        SectionBlock(text="The answer").to_dict(),
        ActionsBlock(
            block_id="controls",
            elements=[ButtonElement(text="Stop", action_id="stop", value="run-1", style="danger")],
        ).to_dict(),
        ContextActionsBlock(
            block_id="feedback",
            elements=[
                FeedbackButtonsElement(
                    action_id="vote",
                    positive_button=FeedbackButtonObject(text="👍", value="up:run-1"),
                    negative_button=FeedbackButtonObject(text="👎", value="down:run-1"),
                )
            ],
        ).to_dict(),
    ]


async def test_buttons_and_feedback_buttons_are_checked_as_slack_checks_them(
    client: AsyncWebClient,
) -> None:
    await client.chat_postMessage(channel="C0GENERAL", text="ok", blocks=message_blocks())
    feedback = message_blocks()[2]
    long_text = {**message_blocks()[1]}
    long_text["elements"] = [
        {**long_text["elements"][0], "text": {"type": "plain_text", "text": "x" * 76}}
    ]
    wrong_element = {**feedback, "elements": [message_blocks()[1]["elements"][0]]}
    one_sided = {
        **feedback,
        "elements": [{k: v for k, v in feedback["elements"][0].items() if k != "negative_button"}],
    }
    six = {**feedback, "elements": [feedback["elements"][0]] * 6}
    element = feedback["elements"][0]
    nameless = {**feedback, "elements": [{k: v for k, v in element.items() if k != "action_id"}]}
    styled = {
        **feedback,
        "elements": [
            {**element, "positive_button": {**element["positive_button"], "style": "primary"}}
        ],
    }
    long_label = {
        **feedback,
        "elements": [
            {
                **element,
                "negative_button": {**element["negative_button"], "accessibility_label": "x" * 76},
            }
        ],
    }
    for bad in (long_text, wrong_element, one_sided, six, nameless, styled, long_label):
        posting = client.chat_postMessage(channel="C0GENERAL", text="x", blocks=[bad])
        assert await error_of(posting) == "invalid_blocks"


def recording_app(slack: SlackSandbox, seen: list[dict[str, Any]]) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
        signing_secret=slack.signing_secret,
    )

    @app.action("stop")
    @app.action("vote")
    async def on_action(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        seen.append(body)
        await respond(text="thanks", response_type="ephemeral", replace_original=False)

    return app


async def click_both(slack: SlackSandbox, ts: str, url: str | None) -> None:
    await slack.click("C0GENERAL", ts, "stop", user_id="U0BOB", url=url)
    await slack.click("C0GENERAL", ts, "vote", user_id="U0ALICE", choice="negative", url=url)
    async with asyncio.timeout(5):
        while len(slack.ephemerals()) < 2:  # noqa: ASYNC110 - respond() runs after the ack
            await asyncio.sleep(0.01)


def check_payloads(seen: list[dict[str, Any]], ts: str) -> None:
    stop, vote = seen
    assert stop["type"] == "block_actions" and stop["user"]["id"] == "U0BOB"
    assert stop["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": "C0GENERAL",
        "is_ephemeral": False,
    }
    assert stop["message"]["ts"] == ts and stop["channel"]["id"] == "C0GENERAL"
    assert stop["actions"][0]["value"] == "run-1" and stop["actions"][0]["block_id"] == "controls"
    assert stop["trigger_id"] and stop["response_url"].startswith("http")
    action = vote["actions"][0]
    assert (action["type"], action["value"], action["block_id"]) == (
        "feedback_buttons",
        "down:run-1",
        "feedback",
    )


async def test_clicks_arrive_as_block_actions_over_socket_mode(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="ok", blocks=message_blocks())
    seen: list[dict[str, Any]] = []
    handler = AsyncSocketModeHandler(recording_app(slack, seen), slack.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await slack.wait_connected()
        await click_both(slack, posted["ts"], None)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    check_payloads(seen, posted["ts"])
    assert [e.user for e in slack.ephemerals()] == ["U0BOB", "U0ALICE"]


async def test_clicks_arrive_signed_over_http(slack: SlackSandbox, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="ok", blocks=message_blocks())
    seen: list[dict[str, Any]] = []
    app = recording_app(slack, seen)
    async with TestServer(app.web_app()) as server:
        await click_both(slack, posted["ts"], str(server.make_url("/slack/events")))
        forged = slack.click_payload("C0GENERAL", posted["ts"], "stop", user_id="U0BOB")
        slack.signing_secret = "not-the-secret"
        with pytest.raises(TimeoutError, match="401"):
            await slack.send_interactive(forged, url=str(server.make_url("/slack/events")))
    check_payloads(seen, posted["ts"])


async def test_nobody_can_click_what_a_message_does_not_show(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="ok", blocks=message_blocks())
    with pytest.raises(ValueError, match="no element"):
        slack.click_payload("C0GENERAL", posted["ts"], "retry")
    private = await client.chat_postMessage(channel="G0TEAM", text="ok", blocks=message_blocks())
    with pytest.raises(ValueError, match="cannot see"):
        slack.click_payload("G0TEAM", private["ts"], "stop", user_id="U0ADMIN")
    await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="done", blocks=[])
    with pytest.raises(ValueError, match="no element"):
        slack.click_payload("C0GENERAL", posted["ts"], "stop")


async def test_an_update_must_give_context_actions_a_new_block_id(client: AsyncWebClient) -> None:
    # "If a message is updated, use a new block_id" (the context actions block reference).
    posted = await client.chat_postMessage(channel="C0GENERAL", text="ok", blocks=message_blocks())
    ts = str(posted["ts"])
    reused = await error_of(
        client.chat_update(channel="C0GENERAL", ts=ts, text="ok", blocks=message_blocks())
    )
    assert reused == "invalid_blocks"
    renewed = [*message_blocks()[:2], {**message_blocks()[2], "block_id": "feedback.1"}]
    await client.chat_update(channel="C0GENERAL", ts=ts, text="ok", blocks=renewed)
    # Text-only edits keep the blocks and are not new iterations of them.
    await client.chat_update(channel="C0GENERAL", ts=ts, text="edited")
