"""Contract tests for the Slack rules a kinder stand-in used to hide, through the real clients.

Each pins one refusal of the real service (or the stricter reading where no source settles
it, as docs/sandbox.md says): the limit on a message's total text (`msg_blocks_too_long`),
lengths measured in UTF-8 bytes with entities as sent, who may edit what with `chat.update`,
the bot's scopes read from manifest.yml, and text that arrives entity-escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack.blocks import MESSAGE_TEXT_MAX
from bot.sandbox.slack.manifest import MANIFEST_PATH, load_manifest
from bot.sandbox.slack.server import SlackSandbox
from tests.sandbox.slack_errors import error_of


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def sections_totalling(total: int) -> list[dict[str, Any]]:
    """Sections of at most 2,500 characters whose text adds up to exactly `total`."""
    sizes = [2500] * (total // 2500) + ([total % 2500] if total % 2500 else [])
    return [section("x" * size) for size in sizes]


# ---------------------------------------------------------------- a message's total text


async def test_a_message_whose_blocks_carry_too_much_text_is_msg_blocks_too_long(
    client: AsyncWebClient,
) -> None:
    at_limit = sections_totalling(MESSAGE_TEXT_MAX)
    assert (await client.chat_postMessage(channel="C0GENERAL", text="t", blocks=at_limit))["ok"]
    over = sections_totalling(MESSAGE_TEXT_MAX + 1)
    post = client.chat_postMessage(channel="C0GENERAL", text="t", blocks=over)
    assert await error_of(post) == "msg_blocks_too_long"


async def test_headers_and_context_count_toward_the_total_and_the_fallback_does_not(
    client: AsyncWebClient,
) -> None:
    body = sections_totalling(MESSAGE_TEXT_MAX - 100)
    fits = [header("h" * 50), *body, {"type": "context", "elements": [section("c")["text"]]}]
    fallback = "f" * 3500
    assert (await client.chat_postMessage(channel="C0GENERAL", text=fallback, blocks=fits))["ok"]
    too_much = [header("h" * 150), *body]
    post = client.chat_postMessage(channel="C0GENERAL", text="t", blocks=too_much)
    assert await error_of(post) == "msg_blocks_too_long"


async def test_update_and_ephemeral_refuse_too_much_text_too(client: AsyncWebClient) -> None:
    over = sections_totalling(MESSAGE_TEXT_MAX + 1)
    posted = await client.chat_postMessage(channel="C0GENERAL", text="t", blocks=[section("a")])
    update = client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="t", blocks=over)
    assert await error_of(update) == "msg_blocks_too_long"
    ephemeral = client.chat_postEphemeral(
        channel="C0GENERAL", user="U0ALICE", text="t", blocks=over
    )
    assert await error_of(ephemeral) == "msg_blocks_too_long"


# ---------------------------------------------------------------- how lengths are counted


@pytest.mark.parametrize(
    ("fits", "too_long"),
    [
        ("€" * 1000, "€" * 1001),  # 3 bytes each: 3,000 and 3,003
        ("😀" * 750, "😀" * 751),  # 4 bytes each (2 UTF-16 units): 3,000 and 3,004
        ("&amp;" * 600, "&amp;" * 600 + "x"),  # an entity counts as sent: five
    ],
    ids=["euro", "emoji", "entities"],
)
async def test_section_text_is_measured_in_utf8_bytes_as_sent(
    client: AsyncWebClient, fits: str, too_long: str
) -> None:
    assert (await client.chat_postMessage(channel="C0GENERAL", text="t", blocks=[section(fits)]))[
        "ok"
    ]
    post = client.chat_postMessage(channel="C0GENERAL", text="t", blocks=[section(too_long)])
    assert await error_of(post) == "invalid_blocks"


async def test_headers_fallback_and_totals_are_measured_in_bytes(client: AsyncWebClient) -> None:
    long_header = client.chat_postMessage(channel="C0GENERAL", text="t", blocks=[header("é" * 76)])
    assert await error_of(long_header) == "invalid_blocks"  # 152 bytes, 76 characters
    long_text = client.chat_postMessage(channel="C0GENERAL", text="é" * 2001)
    assert await error_of(long_text) == "msg_too_long"  # 4,002 bytes
    # 3,700 characters (11,100 bytes) of euro signs in four sections: too much in total.
    euros = [section("€" * 925)] * 4
    post = client.chat_postMessage(channel="C0GENERAL", text="t", blocks=euros)
    assert await error_of(post) == "msg_blocks_too_long"


# ---------------------------------------------------------------- chat.update


async def test_update_takes_a_conversation_id_never_a_name_or_a_user(
    client: AsyncWebClient,
) -> None:
    posted = await client.chat_postMessage(channel="#general", text="by name")
    for channel in ("#general", "general", "U0ALICE"):
        update = client.chat_update(channel=channel, ts=posted["ts"], text="edit")
        assert await error_of(update) == "channel_not_found", channel
    assert (await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="edit"))["ok"]


async def test_update_refusals_name_what_is_wrong(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    alices = slack.workspace.post_as("U0ALICE", "C0GENERAL", "mine")
    update = client.chat_update(channel="C0GENERAL", ts=alices.ts, text="edit")
    assert await error_of(update) == "cant_update_message"
    missing = client.chat_update(channel="C0GENERAL", ts="1700000000.000001", text="edit")
    assert await error_of(missing) == "message_not_found"
    hidden = slack.workspace.post_as("U0ALICE", "G0PRIVATE", "secret")
    private = client.chat_update(channel="G0PRIVATE", ts=hidden.ts, text="edit")
    assert await error_of(private) == "channel_not_found"
    posted = await client.chat_postMessage(channel="C0GENERAL", text="before archiving")
    slack.workspace.channels["C0GENERAL"].is_archived = True
    archived = client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="edit")
    assert await error_of(archived) == "is_inactive"


async def test_a_message_that_is_still_streaming_cannot_be_updated(
    client: AsyncWebClient,
) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="parent")
    stream = await client.chat_startStream(
        channel="C0GENERAL",
        thread_ts=parent["ts"],
        recipient_user_id="U0ALICE",
        recipient_team_id="T0SANDBOX",
        markdown_text="partial",
    )
    update = client.chat_update(channel="C0GENERAL", ts=stream["ts"], text="replace")
    assert await error_of(update) == "streaming_state_conflict"
    await client.chat_stopStream(channel="C0GENERAL", ts=stream["ts"])
    assert (await client.chat_update(channel="C0GENERAL", ts=stream["ts"], text="replace"))["ok"]


async def test_updating_outside_the_channel_needs_what_posting_there_needed() -> None:
    # An app that asks for chat:write.public (orchestrate's manifest does not).
    async with SlackSandbox(scopes=load_manifest().bot_scopes | {"chat:write.public"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        posted = await client.chat_postMessage(channel="C0RANDOM", text="via chat:write.public")
        assert (await client.chat_update(channel="C0RANDOM", ts=posted["ts"], text="edit"))["ok"]
        slack.web_api.scopes -= {"chat:write.public"}
        update = client.chat_update(channel="C0RANDOM", ts=posted["ts"], text="again")
        assert await error_of(update) == "not_in_channel"


# ---------------------------------------------------------------- scopes from manifest.yml


def manifest_without(tmp_path: Path, scope: str, **changes: Any) -> Path:
    data = yaml.safe_load(MANIFEST_PATH.read_text())
    data["oauth_config"]["scopes"]["bot"].remove(scope)
    for key, value in changes.items():
        data["features"][key] = value
    path = tmp_path / "manifest.yml"
    path.write_text(yaml.safe_dump(data))
    return path


async def test_the_bot_token_holds_exactly_the_scopes_manifest_yml_declares(
    client: AsyncWebClient,
) -> None:
    declared = yaml.safe_load(MANIFEST_PATH.read_text())["oauth_config"]["scopes"]["bot"]
    granted = (await client.auth_test()).headers["x-oauth-scopes"].split(",")
    assert sorted(granted) == sorted(declared)


async def test_a_scope_the_manifest_does_not_declare_is_missing_scope(tmp_path: Path) -> None:
    narrow = load_manifest(manifest_without(tmp_path, "users:read"))
    async with SlackSandbox(manifest=narrow) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as caught:
            await client.users_info(user="U0ALICE")
        assert (caught.value.response["error"], caught.value.response["needed"]) == (
            "missing_scope",
            "users:read",
        )


def test_a_missing_manifest_is_an_error_that_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest\.yml"):
        load_manifest(tmp_path / "manifest.yml")


# ---------------------------------------------------------------- escaped text coming in


async def received_payload(slack: SlackSandbox, deliver: Any) -> dict[str, Any]:
    """Run `deliver()` with a Socket Mode client connected; the payload it received."""
    received: list[SocketModeRequest] = []

    async def ack(client: Any, request: SocketModeRequest) -> None:
        received.append(request)
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    socket = SocketModeClient(
        app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url)
    )
    socket.socket_mode_request_listeners.append(ack)
    try:
        await socket.connect()  # type: ignore[no-untyped-call]  # untyped in slack_sdk
        await slack.wait_connected()
        await deliver()
    finally:
        await socket.close()  # type: ignore[no-untyped-call]
    (request,) = received
    return request.payload


TYPED = "R&D <b>bold</b> & @alice in #general, see https://example.com/a?b=1&c=2."


async def test_slash_command_text_arrives_entity_escaped(slack: SlackSandbox) -> None:
    payload = await received_payload(slack, lambda: slack.send_slash_command(text=TYPED))
    # manifest.yml sets should_escape: false, so mentions and links stay as typed.
    assert payload["text"] == (
        "R&amp;D &lt;b&gt;bold&lt;/b&gt; &amp; @alice in #general, "
        "see https://example.com/a?b=1&amp;c=2."
    )


async def test_with_should_escape_commands_carry_mentions_and_links_too(tmp_path: Path) -> None:
    data = yaml.safe_load(MANIFEST_PATH.read_text())
    data["features"]["slash_commands"][0]["should_escape"] = True
    path = tmp_path / "manifest.yml"
    path.write_text(yaml.safe_dump(data))
    async with SlackSandbox(manifest=load_manifest(path)) as slack:
        payload = await received_payload(slack, lambda: slack.send_slash_command(text=TYPED))
    assert payload["text"] == (
        "R&amp;D &lt;b&gt;bold&lt;/b&gt; &amp; <@U0ALICE|alice> in <#C0GENERAL|general>, "
        "see <https://example.com/a?b=1&amp;c=2>."
    )


async def test_a_mention_event_carries_the_text_as_slack_sends_it(slack: SlackSandbox) -> None:
    typed = "@orchestrate what is R&D for <teams> > 5? https://example.com"

    async def mention() -> None:
        await slack.mention(text=typed)

    payload = await received_payload(slack, mention)
    event = payload["event"]
    assert event["type"] == "app_mention"
    assert event["text"] == (
        "<@U0BOT> what is R&amp;D for &lt;teams&gt; &gt; 5? <https://example.com>"
    )
    assert slack.messages("C0GENERAL")[-1].text == event["text"]
    assert "Alice: @U0BOT what is R&D for <teams> > 5?" in slack.transcript("C0GENERAL")


# ---------------------------------------------------------------- what people see


async def test_plain_text_shows_entities_as_sent_and_mrkdwn_decodes_them(
    client: AsyncWebClient, slack: SlackSandbox
) -> None:
    blocks = [header("R&amp;D & Ops"), section("R&amp;D &lt;3")]
    await client.chat_postMessage(channel="C0GENERAL", text="R&amp;D", blocks=blocks)
    transcript = slack.transcript("C0GENERAL")
    assert "# R&amp;D & Ops" in transcript
    assert "R&D <3" in transcript


async def test_response_urls_do_not_apply_the_total_text_limit(slack: SlackSandbox) -> None:
    # The limit is reported for chat.postMessage; the same blocks through respond() passed
    # (slackapi/bolt-js#2867). The stand-in follows the report rather than guessing.
    entry = slack.response_urls.issue(channel="C0GENERAL", user="U0ALICE")
    body = {"text": "t", "blocks": sections_totalling(MESSAGE_TEXT_MAX + 1)}
    async with aiohttp.ClientSession() as session, session.post(entry.url, json=body) as response:
        assert response.status == 200
