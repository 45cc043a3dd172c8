"""Contract tests for the Slack sandbox, driven by the real slack_sdk clients over loopback.

Every later test trusts the sandbox to answer as Slack does, so each rule it enforces is
pinned here through `AsyncWebClient`, `AsyncWebhookClient`, the aiohttp `SocketModeClient`
and `SignatureVerifier`, never by calling the sandbox's internals.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.sandbox.slack.manifest import load_manifest
from bot.sandbox.slack.server import SlackSandbox


async def api_error(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# ---------------------------------------------------------------- identity and auth


async def test_auth_test_names_the_bot_and_reports_granted_scopes(
    client: AsyncWebClient,
) -> None:
    response = await client.auth_test()
    assert (response["user_id"], response["bot_id"], response["team_id"]) == (
        "U0BOT",
        "B0BOT",
        "T0SANDBOX",
    )
    assert set(response.headers["x-oauth-scopes"].split(",")) == load_manifest().bot_scopes


async def test_wrong_missing_or_misused_tokens_are_refused(slack: SlackSandbox) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    missing = AsyncWebClient(base_url=slack.api_url)
    app_token = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    assert (await api_error(wrong.auth_test())).response["error"] == "invalid_auth"
    assert (await api_error(missing.auth_test())).response["error"] == "not_authed"
    refused = await api_error(app_token.chat_postMessage(channel="C0GENERAL", text="hi"))
    assert refused.response["error"] == "not_allowed_token_type"
    bot_for_socket = AsyncWebClient(base_url=slack.api_url)
    opened = bot_for_socket.apps_connections_open(app_token=slack.bot_token)
    assert (await api_error(opened)).response["error"] == "not_allowed_token_type"


async def test_form_bodies_and_token_arguments_are_read_like_json(
    slack: SlackSandbox,
) -> None:
    anonymous = AsyncWebClient(base_url=slack.api_url)
    blocks = json.dumps([section("from a form")])
    response = await anonymous.api_call(
        "chat.postMessage",
        data={"token": slack.bot_token, "channel": "C0GENERAL", "text": "f", "blocks": blocks},
    )
    assert response["message"]["blocks"][0]["text"]["text"] == "from a form"


async def test_a_token_inside_a_json_body_is_ignored_as_slack_ignores_it(
    slack: SlackSandbox,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.api_url}auth.test", json={"token": slack.bot_token}) as response,
    ):
        body = await response.json()
    assert body == {"ok": False, "error": "not_authed"}


# ---------------------------------------------------------------- posting


async def test_post_message_returns_strictly_increasing_slack_timestamps(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    first = await client.chat_postMessage(channel="C0GENERAL", text="one")
    second = await client.chat_postMessage(channel="#general", text="two")
    assert first["ts"] < second["ts"]
    assert first["ts"].split(".")[1].isdigit() and len(first["ts"].split(".")[1]) == 6
    assert first["message"]["bot_id"] == "B0BOT"
    assert [m.text for m in slack.messages("C0GENERAL")] == ["one", "two"]
    assert slack.calls_to("chat.postMessage")[0].args["text"] == "one"


async def test_posting_to_a_user_id_opens_the_bots_dm_with_that_person(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    response = await client.chat_postMessage(channel="U0ALICE", text="hello")
    assert response["channel"] == "D0ALICE"
    assert slack.messages("D0ALICE")[0].text == "hello"


async def test_public_channel_without_membership_needs_chat_write_public() -> None:
    scopes = load_manifest().bot_scopes - {"chat:write.public"}
    async with (
        SlackSandbox(scopes=scopes) as narrow,
        SlackSandbox(scopes=scopes | {"chat:write.public"}) as wide,
    ):
        refused = AsyncWebClient(token=narrow.bot_token, base_url=narrow.api_url)
        allowed = AsyncWebClient(token=wide.bot_token, base_url=wide.api_url)
        error = await api_error(refused.chat_postMessage(channel="C0RANDOM", text="hi"))
        assert error.response["error"] == "not_in_channel"
        assert (await allowed.chat_postMessage(channel="C0RANDOM", text="hi"))["ok"]
        assert "U0BOT" not in wide.workspace.channels["C0RANDOM"].members


@pytest.mark.parametrize("channel", ["G0PRIVATE", "C0NOWHERE", "#no-such-channel"])
async def test_private_channels_without_the_bot_and_unknown_ones_are_not_found(
    client: AsyncWebClient, channel: str
) -> None:
    error = await api_error(client.chat_postMessage(channel=channel, text="hi"))
    assert error.response["error"] == "channel_not_found"


async def test_archived_channels_refuse_posts(client: AsyncWebClient, slack: SlackSandbox) -> None:
    slack.workspace.add_channel("C0OLD", "old", members={"U0BOT"}, is_archived=True)
    error = await api_error(client.chat_postMessage(channel="C0OLD", text="hi"))
    assert error.response["error"] == "is_archived"


async def test_message_content_rules(client: AsyncWebClient) -> None:
    too_long = await api_error(client.chat_postMessage(channel="C0GENERAL", text="x" * 4001))
    assert too_long.response["error"] == "msg_too_long"
    assert (await client.chat_postMessage(channel="C0GENERAL", text="x" * 4000))["ok"]
    with pytest.warns(UserWarning):  # slack_sdk warns too; Slack itself refuses
        empty = await api_error(client.chat_postMessage(channel="C0GENERAL"))
    assert empty.response["error"] == "no_text"
    both = client.chat_postMessage(channel="C0GENERAL", text="a", markdown_text="**a**")
    assert (await api_error(both)).response["error"] == "markdown_text_conflict"


def _limit_cases() -> list[tuple[str, list[dict[str, Any]], str]]:
    plain = {"type": "plain_text", "text": "x"}
    mrkdwn_field = {"type": "mrkdwn", "text": "x"}
    return [
        ("51 blocks", [section("x")] * 51, "no more than 50 items allowed [json-pointer:/blocks]"),
        (
            "long section",
            [section("x" * 3001)],
            "3001 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            "11 fields",
            [{"type": "section", "fields": [mrkdwn_field] * 11}],
            "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
        ),
        (
            "long field",
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}],
            "2001 characters [json-pointer:/blocks/0/fields/0/text]",
        ),
        (
            "long header",
            [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
            "151 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            "mrkdwn header",
            [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}],
            "valid enum value [json-pointer:/blocks/0/text/type]",
        ),
        (
            "11 context elements",
            [{"type": "context", "elements": [plain] * 11}],
            "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
        ),
        (
            "markdown over 12,000 in total",
            [{"type": "markdown", "text": "x" * 6001}, {"type": "markdown", "text": "y" * 6000}],
            "markdown blocks must be at most 12000 characters",
        ),
    ]


@pytest.mark.parametrize(("case", "blocks", "detail"), _limit_cases(), ids=lambda v: str(v)[:20])
async def test_block_kit_limits_answer_invalid_blocks_with_slacks_detail(
    client: AsyncWebClient, case: str, blocks: list[dict[str, Any]], detail: str
) -> None:
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", text=case, blocks=blocks))
    assert error.response["error"] == "invalid_blocks"
    messages = error.response["response_metadata"]["messages"]
    assert any(m.startswith("[ERROR]") and detail in m for m in messages), messages


async def test_blocks_at_the_limits_are_accepted(client: AsyncWebClient) -> None:
    # Each message stays within the 11,000 total; together they reach every per-block limit.
    messages = [
        [
            {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
            section("s" * 3000),
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2000}] * 3},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
        ]
        + [{"type": "divider"}] * 46,
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 1000}] * 10}],
    ]
    for blocks in messages:
        assert (await client.chat_postMessage(channel="C0GENERAL", text="t", blocks=blocks))["ok"]


async def test_thread_ts_must_name_a_live_top_level_message(client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="parent")
    reply = await client.chat_postMessage(channel="C0GENERAL", text="r", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    for bad in ("1700000000.000001", reply["ts"]):
        error = await api_error(
            client.chat_postMessage(channel="C0GENERAL", text="r", thread_ts=bad)
        )
        assert error.response["error"] == "thread_not_found"


async def test_update_edits_keeps_blocks_unless_replaced_and_delete_removes(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="v1", blocks=[section("b1")])
    updated = await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="v2")
    assert updated["message"]["blocks"][0]["text"]["text"] == "b1"
    assert "edited" in updated["message"]
    await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="v3", blocks=[])
    assert slack.messages("C0GENERAL")[0].blocks == []
    await client.chat_delete(channel="C0GENERAL", ts=posted["ts"])
    assert slack.messages("C0GENERAL") == []
    gone = await api_error(client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="x"))
    assert gone.response["error"] == "message_not_found"


async def test_the_bot_cannot_edit_or_delete_what_people_wrote(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    human = slack.workspace.post_as("U0ALICE", "C0GENERAL", "mine")
    edit = await api_error(client.chat_update(channel="C0GENERAL", ts=human.ts, text="x"))
    delete = await api_error(client.chat_delete(channel="C0GENERAL", ts=human.ts))
    assert (edit.response["error"], delete.response["error"]) == (
        "cant_update_message",
        "cant_delete_message",
    )


async def test_ephemeral_needs_the_user_in_the_channel(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    response = await client.chat_postEphemeral(channel="G0TEAM", user="U0BOB", text="psst")
    assert response["message_ts"]
    assert [e.text for e in slack.ephemerals("U0BOB")] == ["psst"]
    refused = await api_error(client.chat_postEphemeral(channel="G0TEAM", user="U0ADMIN", text="x"))
    assert refused.response["error"] == "user_not_in_channel"
    private = await api_error(
        client.chat_postEphemeral(channel="G0PRIVATE", user="U0ALICE", text="x")
    )
    assert private.response["error"] == "channel_not_found"


async def test_permalinks_point_at_the_message_and_its_thread(client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="p")
    reply = await client.chat_postMessage(channel="C0GENERAL", text="r", thread_ts=parent["ts"])
    link = await client.chat_getPermalink(channel="C0GENERAL", message_ts=reply["ts"])
    digits = reply["ts"].replace(".", "")
    assert link["permalink"] == (
        f"https://sandbox.slack.com/archives/C0GENERAL/p{digits}"
        f"?thread_ts={parent['ts']}&cid=C0GENERAL"
    )


# ---------------------------------------------------------------- rate limits and injected failures


async def test_a_429_surfaces_as_slack_api_error_with_retry_after(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    error = await api_error(client.chat_postMessage(channel="C0GENERAL", text="hi"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"
    assert (await client.chat_postMessage(channel="C0GENERAL", text="hi"))["ok"]


async def test_the_rate_limit_retry_handler_gets_through_after_a_429(slack: SlackSandbox) -> None:
    retrying = AsyncWebClient(
        token=slack.bot_token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    slack.fail_next("chat.postMessage", status=429, retry_after=0, times=1)
    assert (await retrying.chat_postMessage(channel="C0GENERAL", text="hi"))["ok"]
    statuses = [c.status for c in slack.calls_to("chat.postMessage")]
    assert statuses == [429, 200]


async def test_injected_errors_apply_to_any_method_for_the_given_count(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    slack.fail_next("users.info", error="fatal_error", status=500, times=2)
    for _ in range(2):
        error = await api_error(client.users_info(user="U0ALICE"))
        assert (error.response.status_code, error.response["error"]) == (500, "fatal_error")
    assert (await client.users_info(user="U0ALICE"))["ok"]


async def test_posting_faster_than_the_channel_rate_is_refused_after_a_burst() -> None:
    async with SlackSandbox(post_rate_per_channel=1.0) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        for n in range(3):
            await client.chat_postMessage(channel="C0GENERAL", text=str(n))
        error = await api_error(client.chat_postMessage(channel="C0GENERAL", text="3"))
        assert error.response.status_code == 429
        assert int(error.response.headers["Retry-After"]) >= 1
        assert (await client.chat_postMessage(channel="G0TEAM", text="other channel"))["ok"]


async def test_chat_update_past_tier_3_is_refused_across_channels_until_the_window_passes(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    # By default, Slack's Tier 3: 50 edits in any minute for the workspace, in any channels.
    posted = [await client.chat_postMessage(channel=c, text="v1") for c in ("C0GENERAL", "G0TEAM")]
    for n in range(50):
        await client.chat_update(
            channel=posted[n % 2]["channel"], ts=posted[n % 2]["ts"], text=f"v{n}"
        )
    error = await api_error(client.chat_update(channel="G0TEAM", ts=posted[1]["ts"], text="x"))
    assert (error.response.status_code, error.response["error"]) == (429, "ratelimited")
    assert 55 <= int(error.response.headers["Retry-After"]) <= 60
    assert slack.messages("G0TEAM")[-1].text == "v49"  # the refused edit changed nothing
    assert (await client.chat_postMessage(channel="C0GENERAL", text="posts are apart"))["ok"]


async def test_chat_update_is_accepted_again_once_the_oldest_edit_leaves_the_window() -> None:
    async with SlackSandbox(update_limit=2, update_window_s=0.5) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        ts = (await client.chat_postMessage(channel="C0GENERAL", text="v0"))["ts"]
        for n in (1, 2):
            await client.chat_update(channel="C0GENERAL", ts=ts, text=f"v{n}")
        error = await api_error(client.chat_update(channel="C0GENERAL", ts=ts, text="v3"))
        assert error.response.status_code == 429
        assert int(error.response.headers["Retry-After"]) == 1  # whole seconds, rounded up
        await asyncio.sleep(0.6)
        assert (await client.chat_update(channel="C0GENERAL", ts=ts, text="v3"))["ok"]
    async with SlackSandbox(update_limit=None) as unlimited:
        client = AsyncWebClient(token=unlimited.bot_token, base_url=unlimited.api_url)
        ts = (await client.chat_postMessage(channel="C0GENERAL", text="v0"))["ts"]
        for n in range(60):
            await client.chat_update(channel="C0GENERAL", ts=ts, text=f"v{n}")


async def test_unknown_methods_are_answered_and_flagged(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    error = await api_error(client.api_call("chat.frobnicate"))
    assert error.response["error"] == "unknown_method"
    with pytest.raises(AssertionError, match=r"chat\.frobnicate"):
        slack.assert_no_unknown_calls()


# ---------------------------------------------------------------- streams and status


async def test_chat_stream_appends_and_stops_into_one_threaded_reply(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="question")
    stream = await client.chat_stream(
        channel="C0GENERAL",
        thread_ts=parent["ts"],
        recipient_user_id="U0ALICE",
        recipient_team_id="T0SANDBOX",
        buffer_size=5,
    )
    await stream.append(markdown_text="**hello ")
    await stream.append(markdown_text="world**")
    stopped = await stream.stop(
        blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": "$0.01"}]}]
    )
    assert stopped["ts"] == stream.ts
    (reply,) = slack.replies("C0GENERAL", parent["ts"])
    assert reply.markdown_text == "**hello world**"
    assert reply.stream is not None and reply.stream.stopped
    assert [c.method for c in slack.calls if "Stream" in c.method] == [
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
    ]
    again = await api_error(
        client.chat_appendStream(channel="C0GENERAL", ts=reply.ts, markdown_text="x")
    )
    assert again.response["error"] == "message_not_in_streaming_state"


async def test_streams_in_channels_need_a_thread_and_a_recipient(client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="q")
    no_recipient = await api_error(
        client.chat_startStream(channel="C0GENERAL", thread_ts=parent["ts"], markdown_text="x")
    )
    assert no_recipient.response["error"] == "invalid_arguments"
    assert "recipient_user_id" in str(no_recipient.response["response_metadata"])
    no_thread = await api_error(client.api_call("chat.startStream", json={"channel": "D0ALICE"}))
    assert no_thread.response["error"] == "invalid_arguments"
    dm_parent = await client.chat_postMessage(channel="D0ALICE", text="q")
    in_dm = await client.chat_startStream(
        channel="D0ALICE", thread_ts=dm_parent["ts"], markdown_text="x"
    )
    assert in_dm["ok"]


async def test_a_stream_expires_and_chat_update_takes_over() -> None:
    async with SlackSandbox(stream_ttl_s=0.05) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        parent = await client.chat_postMessage(channel="D0ALICE", text="q")
        started = await client.chat_startStream(
            channel="D0ALICE", thread_ts=parent["ts"], markdown_text="a"
        )
        await asyncio.sleep(0.1)
        late = client.chat_appendStream(channel="D0ALICE", ts=started["ts"], markdown_text="b")
        assert (await api_error(late)).response["error"] == "message_not_in_streaming_state"
        await client.chat_update(channel="D0ALICE", ts=started["ts"], text="a b")
        assert slack.replies("D0ALICE", parent["ts"])[0].text == "a b"


async def test_assistant_status_shows_until_the_app_replies(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="q")
    await client.assistant_threads_setStatus(
        channel_id="C0GENERAL", thread_ts=parent["ts"], status="is thinking…"
    )
    assert slack.workspace.current_status("C0GENERAL", parent["ts"]) == "is thinking…"
    await client.chat_postMessage(channel="C0GENERAL", text="answer", thread_ts=parent["ts"])
    assert slack.workspace.current_status("C0GENERAL", parent["ts"]) == ""


async def test_assistant_status_refuses_an_unknown_thread_and_over_ten_loading_messages(
    client: AsyncWebClient,
) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="q")
    unknown = client.assistant_threads_setStatus(
        channel_id="C0GENERAL", thread_ts="1.000001", status="is thinking…"
    )
    assert (await api_error(unknown)).response["error"] == "invalid_thread_ts"
    too_many = client.assistant_threads_setStatus(
        channel_id="C0GENERAL",
        thread_ts=parent["ts"],
        status="is thinking…",
        loading_messages=[f"step {n}" for n in range(11)],
    )
    assert (await api_error(too_many)).response["error"] == "invalid_arguments"
    await client.assistant_threads_setStatus(
        channel_id="C0GENERAL",
        thread_ts=parent["ts"],
        status="is thinking…",
        loading_messages=[f"step {n}" for n in range(10)],
    )


# ---------------------------------------------------------------- people, conversations, home


async def test_users_info_reports_roles_and_unknown_users(client: AsyncWebClient) -> None:
    owner = (await client.users_info(user="U0OWNER"))["user"]
    assert (owner["is_admin"], owner["is_owner"], owner["is_primary_owner"]) == (True, True, True)
    alice = (await client.users_info(user="U0ALICE"))["user"]
    assert (alice["is_admin"], alice["is_bot"], alice["tz"]) == (False, False, "America/New_York")
    assert alice["profile"]["real_name"] == "Alice"
    assert (await api_error(client.users_info(user="U0NOBODY"))).response[
        "error"
    ] == "user_not_found"


async def test_conversations_info_and_join_follow_channel_types(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    # conversations.info needs the read scope of the channel's type.
    slack.web_api.scopes -= {"groups:read"}
    refused = await api_error(client.conversations_info(channel="G0TEAM"))
    assert (refused.response["error"], refused.response["needed"]) == (
        "missing_scope",
        "groups:read",
    )
    slack.web_api.scopes |= {"groups:read"}
    assert (await client.conversations_info(channel="G0TEAM"))["channel"]["is_private"]
    hidden = await api_error(client.conversations_info(channel="G0PRIVATE"))
    assert hidden.response["error"] == "channel_not_found"
    joined = await client.conversations_join(channel="C0RANDOM")
    assert (
        joined["channel"]["is_member"] and "U0BOT" in slack.workspace.channels["C0RANDOM"].members
    )
    again = await client.conversations_join(channel="C0RANDOM")
    assert again["warning"] == "already_in_channel"
    private = await api_error(client.conversations_join(channel="G0PRIVATE"))
    assert private.response["error"] == "method_not_supported_for_channel_type"


async def test_missing_scopes_name_what_is_needed_and_what_was_granted() -> None:
    async with SlackSandbox(scopes=frozenset({"chat:write"})) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        error = await api_error(client.conversations_join(channel="C0RANDOM"))
        assert (error.response["error"], error.response["needed"], error.response["provided"]) == (
            "missing_scope",
            "channels:join",
            "chat:write",
        )


async def test_home_views_publish_with_slacks_size_limits(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    published = await client.views_publish(
        user_id="U0ALICE", view={"type": "home", "blocks": [section("hi")]}
    )
    assert published["view"]["type"] == "home"
    assert slack.workspace.home_views["U0ALICE"].view["blocks"] == [section("hi")]
    many = {"type": "home", "blocks": [{"type": "divider"}] * 101}
    assert (await api_error(client.views_publish(user_id="U0ALICE", view=many))).response[
        "error"
    ] == "invalid_arguments"
    big = {"type": "home", "blocks": [section("x" * 2900)] * 90}
    assert (await api_error(client.views_publish(user_id="U0ALICE", view=big))).response[
        "error"
    ] == "invalid_arguments"
    stale = client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": []}, hash="old")
    assert (await api_error(stale)).response["error"] == "hash_conflict"


# ---------------------------------------------------------------- response_url


async def test_response_urls_post_ephemeral_in_channel_and_replace(slack: SlackSandbox) -> None:
    hook = AsyncWebhookClient(parse_qs(slack.slash_command_body(text="q"))["response_url"][0])
    assert (await hook.send(text="working…")).status_code == 200
    assert (await hook.send(text="done", replace_original=True)).status_code == 200
    assert [e.text for e in slack.ephemerals("U0ALICE")] == ["done"]
    await hook.send(text="for everyone", response_type="in_channel")
    assert [m.text for m in slack.messages("C0GENERAL")] == ["for everyone"]


async def test_a_response_url_works_five_times_then_answers_used_url(slack: SlackSandbox) -> None:
    url = parse_qs(slack.slash_command_body(text="q"))["response_url"][0]
    hook = AsyncWebhookClient(url)
    statuses = [(await hook.send(text=str(n))).status_code for n in range(6)]
    assert statuses == [200] * 5 + [404]
    assert slack.workspace.response_posts[-1].error == "used_url"


# ---------------------------------------------------------------- Socket Mode


def acking(
    payload: dict[str, Any] | None, received: list[SocketModeRequest]
) -> Callable[[AsyncBaseSocketModeClient, SocketModeRequest], Awaitable[None]]:
    async def listener(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id, payload))

    return listener


@asynccontextmanager
async def socket_app(
    slack: SlackSandbox,
    received: list[SocketModeRequest],
    *,
    ack_payload: dict[str, Any] | None = None,
    acks: bool = True,
) -> AsyncIterator[SocketModeClient]:
    """A connected Socket Mode client that records envelopes and (unless told not to) acks."""
    client = SocketModeClient(
        app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url)
    )
    if acks:
        client.socket_mode_request_listeners.append(acking(ack_payload, received))
    try:
        await client.connect()  # type: ignore[no-untyped-call]  # untyped in slack_sdk
        yield client
    finally:
        await client.close()  # type: ignore[no-untyped-call]


async def test_socket_mode_client_connects_and_acks_a_slash_command(slack: SlackSandbox) -> None:
    received: list[SocketModeRequest] = []
    async with socket_app(slack, received, ack_payload={"text": "On it"}):
        await slack.wait_connected()
        ack = await slack.send_slash_command(text="how do caches work?", channel_id="G0TEAM")
    assert not ack.timed_out and ack.latency_s is not None and 0 < ack.latency_s < 3
    assert slack.socket.acks == [ack]
    (request,) = received
    assert request.type == "slash_commands" and request.accepts_response_payload
    payload = request.payload
    assert (payload["command"], payload["text"], payload["channel_name"]) == (
        "/orchestrate",
        "how do caches work?",
        "privategroup",
    )
    assert payload["response_url"].startswith(slack.base_url)
    assert [(e.text, e.source) for e in slack.ephemerals("U0ALICE")] == [("On it", "ack")]


async def test_events_api_envelopes_carry_the_callback_and_retry_fields(
    slack: SlackSandbox,
) -> None:
    received: list[SocketModeRequest] = []
    event = {
        "type": "app_mention",
        "user": "U0ALICE",
        "channel": "C0GENERAL",
        "text": "<@U0BOT> hi",
    }
    async with socket_app(slack, received):
        await slack.wait_connected()
        first = await slack.send_event(event, event_id="Ev0DUP")
        retry = await slack.send_event(event, retry_num=1, event_id="Ev0DUP")
    assert not first.timed_out and not retry.timed_out
    assert [(r.payload["event_id"], r.retry_attempt, r.retry_reason) for r in received] == [
        ("Ev0DUP", 0, ""),
        ("Ev0DUP", 1, "timeout"),
    ]
    assert received[0].payload["type"] == "event_callback"
    assert received[0].payload["event"]["type"] == "app_mention"


async def test_an_unacked_command_times_out_and_slack_tells_the_user() -> None:
    async with SlackSandbox(ack_timeout_s=0.2) as slack, socket_app(slack, [], acks=False):
        await slack.wait_connected()
        ack = await slack.send_slash_command(text="q")
    assert ack.timed_out and ack.latency_s is None
    assert (
        slack.ephemerals("U0ALICE")[0].text
        == '/orchestrate failed with the error "operation_timeout"'
    )


async def test_envelopes_are_spread_over_concurrent_connections(slack: SlackSandbox) -> None:
    first: list[SocketModeRequest] = []
    second: list[SocketModeRequest] = []
    async with socket_app(slack, first), socket_app(slack, second):
        await slack.wait_connected(count=2)
        for n in range(4):
            await slack.send_slash_command(text=str(n))
    assert (len(first), len(second)) == (2, 2)


async def test_a_disconnect_message_makes_the_client_reconnect_on_a_new_url(
    slack: SlackSandbox,
) -> None:
    hub = slack.socket
    async with socket_app(slack, []):
        await slack.wait_connected()
        await slack.disconnect_sockets()
        await hub.wait_until(lambda: hub.connections_opened == 2 and len(hub.connections) == 1, 3)
        assert not (await slack.send_slash_command(text="after reconnect")).timed_out
    assert len(slack.calls_to("apps.connections.open")) == 2


# ---------------------------------------------------------------- HTTP mode and signing


def test_signed_requests_verify_and_forgeries_do_not(slack: SlackSandbox) -> None:
    verifier = SignatureVerifier(slack.signing_secret)
    body = slack.slash_command_body(text="hello & goodbye")
    assert verifier.is_valid_request(body, slack.signed_request(body))
    assert not verifier.is_valid_request(body, slack.signed_request(body, secret="wrong"))
    stale = slack.signed_request(body, timestamp=int(time.time()) - 6 * 60)
    assert not verifier.is_valid_request(body, stale)
    assert not verifier.is_valid_request(body + "x", slack.signed_request(body))


async def test_http_command_responses_are_shown_like_slack_shows_them(slack: SlackSandbox) -> None:
    seen: list[str] = []

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append(body)
        if "fail" in body:
            return web.Response(status=500)
        return web.json_response({"response_type": "ephemeral", "text": "Working on it"})

    app = web.Application()
    app.router.add_post("/slack/events", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        url = f"http://{host}:{port}/slack/events"
        status, body, latency = await slack.post_slash_command_http(url, text="q")
        assert (status, json.loads(body)["text"]) == (200, "Working on it") and latency < 3
        assert (await slack.post_slash_command_http(url, text="fail"))[0] == 500
    finally:
        await runner.cleanup()
    assert "command=%2Forchestrate" in seen[0]
    assert [e.text for e in slack.ephemerals("U0ALICE")] == [
        "Working on it",
        '/orchestrate failed with the error "dispatch_failed"',
    ]


# ---------------------------------------------------------------- reading as a person


async def test_transcript_shows_threads_edits_ephemerals_and_hides_deletions(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    question = slack.workspace.post_as("U0ALICE", "C0GENERAL", "how do caches work?")
    head = await client.chat_postMessage(
        channel="C0GENERAL",
        text="Strategy",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "Strategy"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "Two parts"},
                "fields": [{"type": "mrkdwn", "text": "*Cost*"}],
            },
            {"type": "divider"},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "Opus"},
                    {"type": "plain_text", "text": "$0.01"},
                ],
            },
        ],
    )
    reply = await client.chat_postMessage(channel="C0GENERAL", text="draft", thread_ts=head["ts"])
    await client.chat_update(channel="C0GENERAL", ts=reply["ts"], text="final example")
    await client.chat_postEphemeral(
        channel="C0GENERAL", user="U0ALICE", text="only you", thread_ts=head["ts"]
    )
    doomed = await client.chat_postMessage(channel="C0GENERAL", text="oops")
    await client.chat_delete(channel="C0GENERAL", ts=doomed["ts"])
    assert question.ts < head["ts"]
    assert slack.transcript("C0GENERAL") == (
        "#general\n"
        "Alice: how do caches work?\n"
        "orchestrate: # Strategy\n"
        "  Two parts\n"
        "  *Cost*\n"
        "  ────────────────────────\n"
        "  Opus · $0.01\n"
        "    orchestrate: final example (edited)\n"
        "    (only visible to Alice) orchestrate: only you\n"
    )


# ---------------------------------------------------------------- control API


async def test_control_api_drives_commands_transcripts_and_failures(
    slack: SlackSandbox,
) -> None:
    async with socket_app(slack, [], ack_payload={"text": "ok!"}):
        await slack.wait_connected()
        ack, text = await _control_slash_and_transcript(slack)
    async with aiohttp.ClientSession() as session:
        fail = {"method": "auth.test", "error": "invalid_auth"}
        async with session.post(f"{slack.base_url}/_sandbox/fail_next", json=fail) as r:
            assert r.status == 200
    assert ack["payload"] == {"text": "ok!"} and not ack["timed_out"]
    assert text == "#general\n(only visible to Alice) orchestrate: ok!\n"
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    assert (await api_error(client.auth_test())).response["error"] == "invalid_auth"


async def _control_slash_and_transcript(slack: SlackSandbox) -> tuple[dict[str, Any], str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{slack.base_url}/_sandbox/slash", json={"text": "hi"}) as r:
            ack = await r.json()
        async with session.get(f"{slack.base_url}/_sandbox/transcript/C0GENERAL") as r:
            return ack, await r.text()


async def test_malformed_json_bodies_are_refused_not_crashed_on(slack: SlackSandbox) -> None:
    headers = {"Authorization": f"Bearer {slack.bot_token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.api_url}auth.test", data=b"{nope", headers=headers) as response,
    ):
        assert (response.status, await response.json()) == (
            200,
            {"ok": False, "error": "invalid_json"},
        )


async def test_json_without_a_charset_gets_slacks_warning(slack: SlackSandbox) -> None:
    headers = {"Authorization": f"Bearer {slack.bot_token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.api_url}auth.test", data=b"{}", headers=headers) as response,
    ):
        body = await response.json()
    assert (body["ok"], body["warning"]) == (True, "missing_charset")
    assert body["response_metadata"]["warnings"] == ["missing_charset"]


async def test_transcript_keeps_a_deleted_parent_with_replies_and_shows_broadcasts(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    parent = await client.chat_postMessage(channel="G0TEAM", text="parent")
    await client.chat_postMessage(
        channel="G0TEAM", text="loud reply", thread_ts=parent["ts"], reply_broadcast=True
    )
    await client.chat_delete(channel="G0TEAM", ts=parent["ts"])
    assert slack.transcript("G0TEAM") == (
        "#team-private\n"
        "This message was deleted.\n"
        "    orchestrate: loud reply\n"
        "orchestrate (replied to a thread): loud reply\n"
    )


async def test_a_real_bolt_app_in_socket_mode_acks_posts_and_responds(slack: SlackSandbox) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
        signing_secret=slack.signing_secret,
    )
    finished = asyncio.Event()

    @app.command("/orchestrate")
    async def on_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack("Working on it")
        posted = await client.chat_postMessage(channel=command["channel_id"], text="Plan")
        await client.chat_postMessage(
            channel=command["channel_id"], text="Example", thread_ts=posted["ts"]
        )
        await respond(text="Done")
        finished.set()

    handler = AsyncSocketModeHandler(app, slack.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]  # untyped in slack_bolt
    try:
        await slack.wait_connected()
        ack = await slack.send_slash_command(text="q")
        await asyncio.wait_for(finished.wait(), 3)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    # The ack travels over the socket while the listener already calls the Web API, so
    # (as on Slack) the ack's ephemeral and the posts may land in either order.
    assert ack.payload == {"text": "Working on it"}
    assert sorted(e.text for e in slack.ephemerals("U0ALICE")) == ["Done", "Working on it"]
    assert [m.text for m in slack.messages("C0GENERAL")] == ["Plan"]
    assert [r.text for r in slack.replies("C0GENERAL", slack.messages("C0GENERAL")[0].ts)] == [
        "Example"
    ]
    slack.assert_no_unknown_calls()


async def test_an_acks_ephemeral_can_be_replaced_through_the_response_url(
    slack: SlackSandbox,
) -> None:
    done = asyncio.Event()

    async def ack_then_replace(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        await client.send_socket_mode_response(
            SocketModeResponse(req.envelope_id, {"text": "On it"})
        )
        await AsyncWebhookClient(req.payload["response_url"]).send(
            text="Done", replace_original=True
        )
        done.set()

    async with socket_app(slack, [], acks=False) as client:
        client.socket_mode_request_listeners.append(ack_then_replace)
        await slack.wait_connected()
        await slack.send_slash_command(text="q")
        await asyncio.wait_for(done.wait(), 3)
    assert [(e.text, e.source) for e in slack.ephemerals("U0ALICE")] == [("Done", "ack")]


async def test_users_list_pages_through_every_member_with_a_cursor() -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    async with SlackSandbox() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await client.users_list(limit=2, cursor=cursor)
            seen += [m["id"] for m in page["members"]]
            cursor = page["response_metadata"]["next_cursor"] or None
            if cursor is None:
                break
    assert sorted(seen) == sorted(slack.workspace.users)
    assert len(seen) == len(set(seen)) >= 5


# ---------------------------------------------------------------- threads, mentions, shortcuts


async def test_conversations_replies_pages_a_thread_parent_first_with_authors(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    ws = slack.workspace
    parent = ws.post_as("U0ALICE", "C0GENERAL", "Shall we cache?")
    for n in range(4):
        ws.post_as("U0BOB", "C0GENERAL", f"reply {n}", thread_ts=parent.ts)
    ws.post_as("U0HELPER", "C0GENERAL", "a bot says hi", thread_ts=parent.ts)
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        page = await client.conversations_replies(
            channel="C0GENERAL", ts=parent.ts, limit=2, cursor=cursor
        )
        pages.append(page["messages"])
        cursor = page["response_metadata"]["next_cursor"] or None
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    flat = [m for p in pages for m in p]
    assert [m["text"] for m in flat] == [
        "Shall we cache?", "reply 0", "reply 1", "reply 2", "reply 3", "a bot says hi"
    ]  # fmt: skip
    assert [len(p) for p in pages] == [2, 2, 2]  # the parent opens the first page only
    assert flat[0]["reply_count"] == 5 and flat[0]["thread_ts"] == parent.ts
    assert all(m["parent_user_id"] == "U0ALICE" for m in flat[1:])
    assert "bot_id" not in flat[1] and flat[1]["user"] == "U0BOB"
    assert (flat[-1]["user"], flat[-1]["bot_id"]) == ("U0HELPER", "B0HELPER")


async def test_conversations_replies_returns_metadata_only_when_asked(
    client: AsyncWebClient,
) -> None:
    top = await client.chat_postMessage(channel="C0GENERAL", text="run")
    metadata = {"event_type": "orchestrate_run", "event_payload": {"run_id": "r1"}}
    await client.chat_update(channel="C0GENERAL", ts=top["ts"], text="run", metadata=metadata)
    plain = await client.conversations_replies(channel="C0GENERAL", ts=top["ts"])
    full = await client.conversations_replies(
        channel="C0GENERAL", ts=top["ts"], include_all_metadata=True
    )
    assert "metadata" not in plain["messages"][0]
    assert full["messages"][0]["metadata"] == metadata
    assert full["messages"][0]["bot_id"] == "B0BOT"
    nested = {"event_type": "x", "event_payload": {"parts": [1, 2]}}
    refused = await api_error(
        client.chat_postMessage(channel="C0GENERAL", text="m", metadata=nested)
    )
    assert refused.response["error"] == "invalid_metadata_format"


async def test_conversations_replies_refuses_threads_the_bot_cannot_read(
    slack: SlackSandbox, client: AsyncWebClient
) -> None:
    ws = slack.workspace
    secret = ws.post_as("U0ALICE", "G0PRIVATE", "private plans")
    outside = ws.post_as("U0ALICE", "C0RANDOM", "public, bot not in")
    errors = [
        (await api_error(client.conversations_replies(channel=channel, ts=ts))).response["error"]
        for channel, ts in [
            ("G0PRIVATE", secret.ts),
            ("C0RANDOM", outside.ts),
            ("C0GENERAL", "1.000001"),
        ]
    ]
    assert errors == ["channel_not_found", "not_in_channel", "thread_not_found"]
    top = ws.post_as("U0ALICE", "C0GENERAL", "t")
    bad = await api_error(client.conversations_replies(channel="C0GENERAL", ts=top.ts, cursor="zz"))
    assert bad.response["error"] == "invalid_cursor"
    async with SlackSandbox(scopes=load_manifest().bot_scopes - {"groups:history"}) as narrow:
        narrow_client = AsyncWebClient(token=narrow.bot_token, base_url=narrow.api_url)
        team = narrow.workspace.post_as("U0ALICE", "G0TEAM", "t")
        missing = await api_error(narrow_client.conversations_replies(channel="G0TEAM", ts=team.ts))
    assert (missing.response["error"], missing.response["needed"]) == (
        "missing_scope",
        "groups:history",
    )


async def test_mentions_in_threads_carry_the_thread_and_authors_as_slack_sends_them(
    slack: SlackSandbox,
) -> None:
    received: list[SocketModeRequest] = []
    top = slack.workspace.post_as("U0BOB", "C0GENERAL", "discussion")
    message, event = slack.typed_mention("@orchestrate plan <this> & that", thread_ts=top.ts)
    bot_message = slack.workspace.post_as(
        "U0HELPER", "C0GENERAL", "<@U0BOT> from a bot", thread_ts=top.ts
    )
    async with socket_app(slack, received):
        await slack.wait_connected()
        await slack.send_event(event)
    assert message.text == "<@U0BOT> plan &lt;this&gt; &amp; that"
    sent = received[0].payload["event"]
    assert (sent["type"], sent["user"], sent["ts"], sent["thread_ts"], sent["parent_user_id"]) == (
        "app_mention",
        "U0ALICE",
        message.ts,
        top.ts,
        "U0BOB",
    )
    assert "bot_id" not in sent
    from bot.sandbox.slack.payloads import mention_event

    from_bot = mention_event(slack.workspace, bot_message)
    assert (from_bot["user"], from_bot["bot_id"]) == ("U0HELPER", "B0HELPER")
    with pytest.raises(ValueError, match="not in it"):
        slack.typed_mention("@orchestrate hello?", channel_id="C0RANDOM")


async def test_message_shortcuts_arrive_over_the_socket_and_signed_over_http(
    slack: SlackSandbox,
) -> None:
    received: list[SocketModeRequest] = []
    top = slack.workspace.post_as("U0BOB", "C0GENERAL", "let us discuss")
    async with socket_app(slack, received):
        await slack.wait_connected()
        ack = await slack.send_message_shortcut(top, callback_id="orchestrate_thread")
    assert not ack.timed_out
    payload = received[0].payload
    assert received[0].type == "interactive"
    assert (payload["type"], payload["callback_id"], payload["message_ts"]) == (
        "message_action",
        "orchestrate_thread",
        top.ts,
    )
    assert payload["channel"]["id"] == "C0GENERAL" and payload["user"]["id"] == "U0ALICE"
    assert payload["message"]["text"] == "let us discuss"
    assert payload["response_url"].startswith(slack.base_url)

    bodies: list[str] = []

    async def events(request: web.Request) -> web.Response:
        body = await request.text()
        assert SignatureVerifier(slack.signing_secret).is_valid_request(body, dict(request.headers))
        bodies.append(body)
        return web.Response()

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        status, _, _ = await slack.post_message_shortcut_http(
            f"http://127.0.0.1:{port}/slack/events", top, callback_id="orchestrate_thread"
        )
    finally:
        await runner.cleanup()
    assert status == 200
    sent = json.loads(parse_qs(bodies[0])["payload"][0])
    assert (sent["type"], sent["message_ts"]) == ("message_action", top.ts)
