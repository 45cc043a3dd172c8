"""Contract tests for modals and file uploads in the Slack sandbox, through the real clients.

A modal opens only with a fresh, unused trigger_id (three seconds, once); a view is checked as
Slack checks it; `view_submission` travels over Socket Mode and signed over HTTP to a real Bolt
app, whose `response_action: errors` must name input blocks of the view. The external upload
is Slack's two steps with an upload URL served by the sandbox, driven by slack_sdk's own
`files_upload_v2`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack.files import shared_files
from bot.sandbox.slack.manifest import load_manifest
from bot.sandbox.slack.server import SlackSandbox
from tests.sandbox.slack_errors import error_of


def modal(title: str = "Budgets", *, submit: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "budgets",
        "title": {"type": "plain_text", "text": title},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "Set budgets"}},
            {
                "type": "input",
                "block_id": "daily",
                "optional": True,
                "label": {"type": "plain_text", "text": "Per-user daily budget"},
                "element": {
                    "type": "number_input",
                    "action_id": "value",
                    "is_decimal_allowed": True,
                    "initial_value": "0.50",
                },
            },
            {
                "type": "input",
                "block_id": "alerts",
                "optional": True,
                "label": {"type": "plain_text", "text": "Alert channel"},
                "element": {"type": "conversations_select", "action_id": "value"},
            },
        ],
    }
    if submit:
        view["submit"] = {"type": "plain_text", "text": "Save"}
    return view


def trigger(slack: SlackSandbox, user_id: str = "U0ADMIN") -> str:
    return slack.triggers.issue(user_id)


async def test_a_trigger_opens_one_modal_once_and_only_while_fresh(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    fresh = trigger(slack)
    opened = await client.views_open(trigger_id=fresh, view=modal())
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["state"]["values"]["daily"]["value"]["value"] == "0.50"
    assert [m.id for m in slack.open_modals("U0ADMIN")] == [opened["view"]["id"]]
    assert await error_of(client.views_open(trigger_id=fresh, view=modal())) == (
        "exchanged_trigger_id"
    )
    assert await error_of(client.views_open(trigger_id="1.2.3", view=modal())) == (
        "invalid_trigger_id"
    )
    slack.triggers.ttl_s = 0.01
    stale = trigger(slack)
    await asyncio.sleep(0.05)
    assert await error_of(client.views_open(trigger_id=stale, view=modal())) == (
        "expired_trigger_id"
    )


async def test_modal_views_are_checked_as_slack_checks_them(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    for bad in (modal(title="x" * 25), modal(submit=False), {**modal(), "type": "home"}):
        assert await error_of(client.views_open(trigger_id=trigger(slack), view=bad)) == (
            "invalid_arguments"
        )
    no_label = modal()
    del no_label["blocks"][1]["label"]
    assert await error_of(client.views_open(trigger_id=trigger(slack), view=no_label)) == (
        "invalid_arguments"
    )
    # A refused view does not use up the trigger.
    kept = trigger(slack)
    assert await error_of(client.views_open(trigger_id=kept, view=modal(title=""))) == (
        "invalid_arguments"
    )
    assert (await client.views_open(trigger_id=kept, view=modal()))["ok"]


async def test_views_update_replaces_a_modal_and_refuses_a_stale_hash(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    opened = (await client.views_open(trigger_id=trigger(slack), view=modal()))["view"]
    updated = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=modal(title="Budgets saved")
    )
    assert updated["view"]["title"]["text"] == "Budgets saved"
    stale = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal())
    assert await error_of(stale) == "hash_conflict"
    assert await error_of(client.views_update(view_id="V0NOPE", view=modal())) == "not_found"


def submission_app(slack: SlackSandbox, answers: dict[str, Any]) -> AsyncApp:
    """A Bolt app that opens the modal from a command and answers submissions with `answers`
    (by the submitted daily value)."""
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
        signing_secret=slack.signing_secret,
    )

    @app.command("/orchestrate")
    async def on_command(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=modal())

    @app.view("budgets")
    async def on_submit(ack: AsyncAck, view: dict[str, Any]) -> None:
        daily = view["state"]["values"]["daily"]["value"]["value"]
        await ack(**answers.get(daily, {}))

    return app


ANSWERS = {
    "-1": {"response_action": "errors", "errors": {"daily": "Use an amount above $0."}},
    "x": {"response_action": "errors", "errors": {"not-an-input": "nope"}},
}


async def wait_for_modal(slack: SlackSandbox, user_id: str) -> str:
    async with asyncio.timeout(5):
        while not slack.open_modals(user_id):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return slack.open_modals(user_id)[0].id


async def exercise_submissions(
    slack: SlackSandbox, open_modal: Callable[[], Awaitable[object]], url: str | None
) -> None:
    await open_modal()
    view_id = await wait_for_modal(slack, "U0ADMIN")
    shown = await slack.submit_modal(view_id, {"daily": "-1"}, url=url)
    assert shown.outcome == "errors"
    assert shown.errors == {"daily": "Use an amount above $0."}
    assert slack.open_modals("U0ADMIN")  # still open, error under the input
    refused = await slack.submit_modal(view_id, {"daily": "x"}, url=url)
    assert refused.outcome == "refused"  # errors must name input blocks of the view
    closed = await slack.submit_modal(view_id, {"daily": "2.50", "alerts": "C0GENERAL"}, url=url)
    assert closed.outcome == "closed"
    assert slack.open_modals("U0ADMIN") == []


async def test_view_submissions_over_socket_mode_reach_bolt_and_errors_keep_the_modal_open(
    slack: SlackSandbox,
) -> None:
    handler = AsyncSocketModeHandler(submission_app(slack, ANSWERS), slack.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await slack.wait_connected()
        await exercise_submissions(
            slack, lambda: slack.send_slash_command(text="budgets", user_id="U0ADMIN"), None
        )
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    slack.assert_no_unknown_calls()


async def test_view_submissions_over_http_are_signed_and_answered_in_the_body(
    slack: SlackSandbox,
) -> None:
    app = submission_app(slack, ANSWERS)
    async with TestServer(app.web_app()) as server:
        url = str(server.make_url("/slack/events"))

        async def open_modal() -> object:
            return await slack.post_slash_command_http(url, text="budgets", user_id="U0ADMIN")

        await exercise_submissions(slack, open_modal, url)


async def test_a_button_click_on_app_home_carries_a_trigger_that_opens_a_modal(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    home = {
        "type": "home",
        "blocks": [
            {
                "type": "actions",
                "block_id": "admin",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "open_budgets",
                        "text": {"type": "plain_text", "text": "Budgets"},
                    }
                ],
            }
        ],
    }
    await client.views_publish(user_id="U0ADMIN", view=home)
    app = AsyncApp(client=client, signing_secret=slack.signing_secret)
    seen: list[dict[str, Any]] = []

    @app.action("open_budgets")
    async def on_click(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        seen.append(body)
        await client.views_open(trigger_id=body["trigger_id"], view=modal())

    handler = AsyncSocketModeHandler(app, slack.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await slack.wait_connected()
        await slack.click_home_button("U0ADMIN", "open_budgets")
        await wait_for_modal(slack, "U0ADMIN")
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert seen[0]["container"]["type"] == "view" and seen[0]["user"]["id"] == "U0ADMIN"
    with pytest.raises(ValueError, match="no button"):
        await slack.click_home_button("U0BOB", "open_budgets")


async def test_interactions_need_interactivity_enabled_in_the_manifest() -> None:
    manifest = load_manifest()
    off = type(manifest)(**{**{f: getattr(manifest, f) for f in manifest.__slots__},
                             "interactivity": False})  # fmt: skip
    async with SlackSandbox(manifest=off) as slack:
        with pytest.raises(RuntimeError, match="interactivity"):
            await slack.send_interactive({"type": "block_actions"})


async def test_files_upload_v2_goes_through_both_steps_into_a_dm(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    dm = (await client.conversations_open(users="U0ADMIN"))["channel"]["id"]
    csv = "call_id,cost_usd\n1,0.012000000\n"
    done = await client.files_upload_v2(
        channel=dm, content=csv, filename="costs.csv", title="Costs", initial_comment="Here"
    )
    assert done["file"]["name"] == "costs.csv"
    [upload] = slack.uploads
    assert upload.text == csv and upload.shared_in == [dm]
    [message] = slack.messages(dm)
    assert message.text == "Here" and shared_files(message)[0]["id"] == upload.id
    assert [c.method for c in slack.calls] == [
        "conversations.open",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_uploads_are_refused_where_slack_refuses_them(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    never_uploaded = (await client.files_getUploadURLExternal(filename="a.csv", length=3))[
        "file_id"
    ]
    assert await error_of(client.files_completeUploadExternal(files=[{"id": never_uploaded}])) == (
        "file_not_found"
    )
    not_in = client.files_upload_v2(channel="C0RANDOM", content="abc", filename="a.csv")
    assert await error_of(not_in) == "not_in_channel"
    assert await error_of(client.files_getUploadURLExternal(filename="a.csv", length=0)) == (
        "invalid_arguments"
    )
    async with SlackSandbox(scopes=frozenset({"chat:write"})) as narrow:
        narrow_client = AsyncWebClient(token=narrow.bot_token, base_url=narrow.api_url)
        call = narrow_client.files_getUploadURLExternal(filename="a.csv", length=3)
        assert await error_of(call) == "missing_scope"
