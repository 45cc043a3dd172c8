"""A faithful local Slack for tests and the demo: Web API, Socket Mode and response URLs.

`SlackSandbox` serves, on one loopback port, the Web API methods orchestrate uses (under
`api_url`, for `AsyncWebClient(base_url=...)`), Socket Mode (`apps.connections.open` hands
out a `ws://` URL), per-command `response_url`s, and a small control API (`/_sandbox/...`).
It plays the Slack side of a conversation: `send_slash_command` / `send_event` deliver
envelopes and time the app's ack; `click` delivers a person's click on a message's button or
feedback buttons as a `block_actions` payload (over Socket Mode, or signed over HTTP), as
`click_home_button` does for App Home; `post_slash_command_http` does the same for an app served
over HTTP, signed with the signing secret. Tests read the result as a person would with
`transcript`, or as data through `workspace`, `messages`, `replies`, `ephemerals` and
`calls`; `fail_next` injects errors and 429s; `assert_no_unknown_calls` catches calls to
methods the sandbox (and so this project's contract with Slack) does not know.

The seeded workspace (team T0SANDBOX, domain "sandbox"):

* users U0ADMIN Ada (is_admin), U0OWNER Olive (is_owner, is_primary_owner), U0ALICE Alice,
  U0BOB Bob; the bot user U0BOT "orchestrate" (bot_id B0BOT, app A0ORCH);
* C0GENERAL #general, public, everyone and the bot; C0RANDOM #random, public, the bot is
  NOT a member; G0PRIVATE #secret-plans, private (Ada, Alice), bot NOT a member; G0TEAM
  #team-private, private (Alice, Bob), bot a member; D0ALICE, the DM between Alice and the bot.

Add more with `workspace.add_user`, `workspace.add_channel` and `workspace.add_im`.

The app is installed as manifest.yml describes it (`bot.sandbox.slack.manifest`): the bot token
holds exactly the manifest's bot scopes unless a test passes `scopes=`, and slash-command text
arrives escaped as the manifest's `should_escape` says. What people type reaches the app the
way Slack sends it: `send_slash_command(text=...)` and `mention(text=...)` take the text as
typed and deliver it entity-escaped, with mentions and links as Slack marks them up.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.sandbox.slack.chat import ChatMethods
from bot.sandbox.slack.control import control_routes
from bot.sandbox.slack.files import FileMethods, UploadedFile
from bot.sandbox.slack.manifest import AppManifest, load_manifest
from bot.sandbox.slack.methods import OtherMethods
from bot.sandbox.slack.oidc import OpenIdConnect
from bot.sandbox.slack.payloads import (
    block_actions_on_message,
    clicked,
    command_response,
    event_callback,
    form_body,
    mention_event,
    message_action_payload,
    message_text,
    post_signed,
    signature_headers,
    slash_command_payload,
)
from bot.sandbox.slack.response_url import ResponseUrl, ResponseUrls
from bot.sandbox.slack.socket import Ack, SocketHub
from bot.sandbox.slack.transcript import transcript
from bot.sandbox.slack.views import (
    Modal,
    SubmissionResult,
    Triggers,
    ViewMethods,
    block_actions_payload,
    find_button,
    view_submission_payload,
)
from bot.sandbox.slack.web import ApiCall, WebApi, WindowLimit
from bot.sandbox.slack.workspace import Ephemeral, Message, Workspace

__all__ = ["Ack", "ApiCall", "AppManifest", "Ephemeral", "Message", "SlackSandbox", "Workspace"]

# chat.update is Tier 3: "50+ per minute", read as at most 50 in any 60 s.
UPDATE_LIMIT = 50
# The stream methods' tiers, read the same way: chat.startStream and chat.stopStream are
# Tier 2 ("20+ per minute"), chat.appendStream Tier 4 ("100+ per minute").
STREAM_LIMITS = {"chat.startStream": 20, "chat.stopStream": 20, "chat.appendStream": 100}
# The other methods the app calls per run, per click or per page, at their tiers read the
# same way: Tier 2 `users.list` (20), Tier 3 `conversations.*` (50), Tier 4 `users.info`,
# `views.open`, `views.publish` (100). `assistant.threads.setStatus` has "special rate
# limits" (unpublished): read as Tier 3, the stricter of the tiers it could be.
TIER_LIMITS = {
    "users.list": 20,
    "users.info": 100,
    "views.open": 100,
    "views.publish": 100,
    "assistant.threads.setStatus": 50,
    "conversations.replies": 50,
    "conversations.history": 50,
    "conversations.join": 50,
    "conversations.open": 50,
    "conversations.info": 50,
}
# Slack gives up on a slash command, and tells the user so, after three seconds.
COMMAND_TIMEOUT_S = 3.0
# A stream that gets no append "for a while" stops streaming (vercel/chat#607 saw a 5-minute
# gap end one; timescale/tiger-agents-for-work#297 "idle for a few minutes"). The figure is
# unpublished: the stand-in takes a shorter one, the stricter reading. Streams also end about
# five minutes after they start whatever was appended (python-slack-sdk#1859).
STREAM_IDLE_S = 60.0


class SlackSandbox:
    """One Slack workspace with this app installed, served on 127.0.0.1."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-sandbox",
        app_token: str = "xapp-sandbox",
        signing_secret: str = "sandbox-signing-secret",
        team_id: str = "T0SANDBOX",
        manifest: AppManifest | None = None,
        scopes: frozenset[str] | None = None,
        post_rate_per_channel: float | None = None,
        update_limit: int | None = UPDATE_LIMIT,
        update_window_s: float = 60.0,
        stream_limits: bool = True,
        tier_limits: bool = True,
        stream_ttl_s: float = 300.0,
        stream_idle_s: float = STREAM_IDLE_S,
        ack_timeout_s: float = COMMAND_TIMEOUT_S,
        events_url: str | None = None,
    ) -> None:
        """`ack_timeout_s` replaces Slack's 3 s wait for an ack, to keep timeout tests short.

        `events_url` is an HTTP-mode app's Request URL (`https://<host>/slack/events`): the
        control API's `POST /_sandbox/slash` then posts a signed request there, as Slack does
        for an app with Socket Mode off, instead of delivering it over Socket Mode.

        `chat.update` answers 429 `ratelimited` past `update_limit` calls in any
        `update_window_s` (Slack's Tier 3: 50 a minute); None lifts the limit. The stream
        methods answer the same past their tiers in any 60 s (`stream_limits=False` lifts them),
        and so do users.*, views.open/publish, assistant.threads.setStatus and conversations.*
        (`tier_limits=False` lifts those).
        A stream ends `stream_idle_s` after its last append, and `stream_ttl_s` after it began.

        `manifest` defaults to manifest.yml; `scopes` (the bot token's grants) to its scopes.
        """
        self.manifest = manifest or load_manifest()
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.events_url = events_url
        self.stream_ttl_s = stream_ttl_s
        self.workspace = Workspace.seeded(team_id)
        self.web_api = WebApi(
            bot_token=bot_token,
            app_token=app_token,
            scopes=self.manifest.bot_scopes if scopes is None else scopes,
            post_rate_per_channel=post_rate_per_channel,
            update_limit=WindowLimit(update_limit, update_window_s) if update_limit else None,
            method_limits={
                method: WindowLimit(n)
                for method, n in (
                    *(STREAM_LIMITS.items() if stream_limits else ()),
                    *(TIER_LIMITS.items() if tier_limits else ()),
                )
            },
        )
        self.socket = SocketHub(app_id=self.workspace.app_id, ack_timeout_s=ack_timeout_s)
        self.response_urls = ResponseUrls(self.workspace)
        ChatMethods(
            self.workspace, self.web_api, stream_ttl_s=stream_ttl_s, stream_idle_s=stream_idle_s
        ).register()
        OtherMethods(self.workspace, self.web_api, open_socket_url=self.socket.issue_url).register()
        self.triggers = Triggers()
        self.views = ViewMethods(self.workspace, self.web_api, self.triggers)
        self.views.register()
        self.file_methods = FileMethods(self.workspace, self.web_api)
        self.file_methods.register()
        self.oidc = OpenIdConnect(self.workspace, self.web_api)
        self.oidc.register()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self._application(), shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        self.socket.ws_base = f"ws://{bound_host}:{bound_port}"
        self.response_urls.base = self.base_url
        self.file_methods.base = self.base_url

    async def stop(self) -> None:
        await self.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackSandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """The Web API base URL, e.g. http://127.0.0.1:PORT/api/ (trailing slash included)."""
        return f"{self.base_url}/api/"

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self.web_api.handle)
        app.router.add_get("/socket-mode/link/", self.socket.handle)
        app.router.add_post("/commands/{team}/{serial}/{secret}", self.response_urls.handle)
        app.add_routes(self.file_methods.routes())
        app.add_routes(self.oidc.routes())
        app.add_routes(control_routes(self))
        return app

    # ------------------------------------------------------------ Web API bookkeeping

    @property
    def calls(self) -> list[ApiCall]:
        return self.web_api.calls

    @property
    def unknown_calls(self) -> list[ApiCall]:
        return self.web_api.unknown_calls

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    def fail_next(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Make the next `times` calls to `method` fail (429 → `ratelimited` by default),
        once `after` more calls to it have succeeded."""
        self.web_api.fail_next(
            method, error=error, status=status, retry_after=retry_after, times=times, after=after
        )

    def drop_connections(self, seconds: float, *, landing: int = 0) -> None:
        """An outage: for `seconds`, every Web API call's connection is closed without an
        answer (the client sees the server disconnect). The first `landing` calls act
        before their connection drops: a post is made that the app never hears about."""
        self.web_api.drop_connections(seconds, landing=landing)

    def assert_no_unknown_calls(self) -> None:
        if self.unknown_calls:
            names = ", ".join(sorted({c.method for c in self.unknown_calls}))
            raise AssertionError(
                f"the app called Web API methods the sandbox does not know: "
                f"{names} (implement them in bot/sandbox or stop calling them)"
            )

    # ------------------------------------------------------------ Socket Mode

    # Takes `timeout` itself so that tests need not wrap every wait in asyncio.timeout.
    async def wait_connected(self, timeout: float = 5.0, *, count: int = 1) -> None:  # noqa: ASYNC109
        """Wait until at least `count` Socket Mode connections are open."""
        await self.socket.wait_connected(timeout, count=count)

    async def disconnect_sockets(self, reason: str = "refresh_requested") -> None:
        await self.socket.disconnect(reason)

    async def send_slash_command(
        self,
        *,
        text: str,
        user_id: str = "U0ALICE",
        channel_id: str = "C0GENERAL",
        command: str = "/orchestrate",
    ) -> Ack:
        entry = self.response_urls.issue(channel=channel_id, user=user_id)
        payload = self._command_payload(entry, text, user_id, channel_id, command)
        ack = await self.socket.deliver(
            "slash_commands",
            payload,
            accepts_response_payload=True,
            on_ack=lambda body: self._show_command_response(entry, body or {}),
        )
        if ack.timed_out:
            self._operation_failed(entry, command, "operation_timeout")
        return ack

    async def send_event(
        self, event: dict[str, Any], *, retry_num: int | None = None, event_id: str | None = None
    ) -> Ack:
        """Deliver an Events API callback; pass the same `event_id` to model Slack's retry."""
        payload = event_callback(self.workspace, event)
        if event_id is not None:
            payload["event_id"] = event_id
        return await self.socket.deliver(
            "events_api",
            payload,
            accepts_response_payload=False,
            retry_attempt=retry_num or 0,
            retry_reason="timeout" if retry_num else "",
        )

    def typed_mention(
        self,
        text: str,
        *,
        user_id: str = "U0ALICE",
        channel_id: str = "C0GENERAL",
        thread_ts: str | None = None,
    ) -> tuple[Message, dict[str, Any]]:
        """`user_id` posts `text` (as typed, naming the bot as `@orchestrate`): the message as
        Slack stores it and the `app_mention` event Slack sends for it (not yet sent)."""
        ws = self.workspace
        wire = message_text(ws, text)
        if f"<@{ws.bot_user_id}>" not in wire:
            raise ValueError(f"{text!r} does not mention @{ws.users[ws.bot_user_id].name}")
        posted = ws.post_as(user_id, channel_id, wire, thread_ts=thread_ts)
        return posted, mention_event(ws, posted)

    async def mention(
        self,
        *,
        text: str,
        user_id: str = "U0ALICE",
        channel_id: str = "C0GENERAL",
        thread_ts: str | None = None,
        event_id: str | None = None,
        retry_num: int | None = None,
    ) -> tuple[Message, Ack]:
        """A person posts `text` (as typed, naming the bot as `@orchestrate`); the app gets the
        `app_mention` event with the text as Slack sends it. Returns the message and the ack."""
        posted, event = self.typed_mention(
            text, user_id=user_id, channel_id=channel_id, thread_ts=thread_ts
        )
        ack = await self.send_event(event, retry_num=retry_num, event_id=event_id)
        return posted, ack

    async def send_message_shortcut(
        self, message: Message, *, callback_id: str, user_id: str = "U0ALICE"
    ) -> Ack:
        """`user_id` picks the app's message shortcut `callback_id` on `message`."""
        payload = self._shortcut_payload(message, callback_id, user_id)
        return await self.socket.deliver("interactive", payload, accepts_response_payload=False)

    async def post_message_shortcut_http(
        self, url: str, message: Message, *, callback_id: str, user_id: str = "U0ALICE"
    ) -> tuple[int, str, float]:
        """The same over HTTP: a signed form body with the JSON in `payload`."""
        body = self.message_shortcut_body(message, callback_id=callback_id, user_id=user_id)
        status, text_body, _, latency = await post_signed(url, body, self.signed_request(body))
        return status, text_body, latency

    def message_shortcut_body(
        self, message: Message, *, callback_id: str, user_id: str = "U0ALICE"
    ) -> str:
        """The form body Slack posts over HTTP for a message shortcut (sign it to send it)."""
        payload = self._shortcut_payload(message, callback_id, user_id)
        return form_body({"payload": json.dumps(payload, separators=(",", ":"))})

    def _shortcut_payload(self, message: Message, callback_id: str, user_id: str) -> dict[str, Any]:
        entry = self.response_urls.issue(channel=message.channel, user=user_id)
        return message_action_payload(
            self.workspace,
            message,
            user_id=user_id,
            callback_id=callback_id,
            response_url=entry.url,
        )

    async def send_envelope(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = False
    ) -> Ack:
        """Any other envelope, e.g. kind="interactive" with a block_actions payload."""
        return await self.socket.deliver(
            kind, payload, accepts_response_payload=accepts_response_payload
        )

    # ------------------------------------------------------------ interactivity

    def click_payload(
        self,
        channel_id: str,
        ts: str,
        action_id: str,
        *,
        user_id: str = "U0ALICE",
        choice: str | None = None,
    ) -> dict[str, Any]:
        """The `block_actions` payload of `user_id` clicking `action_id` on a message as it
        shows now (`choice` picks a feedback button). Refuses a click nobody could make: an
        element the message does not show, or a person who cannot see the channel."""
        message = self.workspace.find(channel_id, ts)
        if message is None:
            raise ValueError(f"no message {ts} in {channel_id}")
        if user_id not in self.workspace.channels[channel_id].members:
            raise ValueError(f"{user_id} cannot see {channel_id}")
        block, element = _element(message, action_id)
        entry = self.response_urls.issue(channel=channel_id, user=user_id)
        entry.last = message  # replace_original acts on the message that was clicked
        return block_actions_on_message(
            self.workspace,
            user_id=user_id,
            message=message,
            block=block,
            action=clicked(element, choice),
            response_url=entry.url,
            trigger_id=self.triggers.issue(user_id),
        )

    async def click(
        self,
        channel_id: str,
        ts: str,
        action_id: str,
        *,
        user_id: str = "U0ALICE",
        choice: str | None = None,
        url: str | None = None,
    ) -> dict[str, Any] | None:
        """`click_payload` then `send_interactive`: one person's click, delivered (signed to
        `url` in HTTP mode); returns the app's answer body."""
        payload = self.click_payload(channel_id, ts, action_id, user_id=user_id, choice=choice)
        return await self.send_interactive(payload, url=url)

    # ------------------------------------------------------------ HTTP mode

    def signed_request(
        self,
        body: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> dict[str, str]:
        return signature_headers(
            body,
            secret=secret or self.signing_secret,
            timestamp=timestamp,
            content_type=content_type,
        )

    def slash_command_body(
        self,
        *,
        text: str,
        user_id: str = "U0ALICE",
        channel_id: str = "C0GENERAL",
        command: str = "/orchestrate",
    ) -> str:
        entry = self.response_urls.issue(channel=channel_id, user=user_id)
        return form_body(self._command_payload(entry, text, user_id, channel_id, command))

    async def post_slash_command_http(
        self,
        url: str,
        *,
        text: str,
        user_id: str = "U0ALICE",
        channel_id: str = "C0GENERAL",
        command: str = "/orchestrate",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[int, str, float]:
        """POST a signed slash command to the app; returns (status, body, latency_s)."""
        entry = self.response_urls.issue(channel=channel_id, user=user_id)
        body = form_body(self._command_payload(entry, text, user_id, channel_id, command))
        headers = self.signed_request(body, timestamp=timestamp, secret=secret)
        status, text_body, content_type, latency = await post_signed(url, body, headers)
        if latency > self.socket.ack_timeout_s:
            self._operation_failed(entry, command, "operation_timeout")
        elif status != 200:
            self._operation_failed(entry, command, "dispatch_failed")
        else:
            self._show_command_response(entry, command_response(text_body, content_type))
        return status, text_body, latency

    async def post_event_http(
        self,
        url: str,
        event: dict[str, Any],
        *,
        retry_num: int | None = None,
        event_id: str | None = None,
    ) -> tuple[int, str, float]:
        """POST a signed Events API callback, with Slack's retry headers when retrying."""
        payload = event_callback(self.workspace, event)
        if event_id is not None:
            payload["event_id"] = event_id
        body = json.dumps(payload, separators=(",", ":"))
        headers = self.signed_request(body, content_type="application/json")
        if retry_num:
            headers.update(
                {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
            )
        status, text_body, _, latency = await post_signed(url, body, headers)
        return status, text_body, latency

    # ------------------------------------------------------------ reading the workspace

    def transcript(self, channel_id: str) -> str:
        return transcript(self.workspace, channel_id, stream_ttl_s=self.stream_ttl_s)

    def messages(self, channel_id: str) -> list[Message]:
        """Live top-level messages of a channel, oldest first."""
        return [
            m
            for m in self.workspace.history.get(channel_id, [])
            if not m.is_reply and not m.deleted
        ]

    def replies(self, channel_id: str, thread_ts: str) -> list[Message]:
        return self.workspace.thread_replies(channel_id, thread_ts)

    def ephemerals(self, user_id: str | None = None) -> list[Ephemeral]:
        return [e for e in self.workspace.ephemerals if user_id is None or e.user == user_id]

    # ------------------------------------------------------------ modals and files

    def open_modals(self, user_id: str) -> list[Modal]:
        """The modals `user_id` has open now (opened with views.open, not yet closed)."""
        return self.views.open_modals(user_id)

    @property
    def uploads(self) -> list[UploadedFile]:
        """Every external upload the app started, completed or not."""
        return list(self.file_methods.files.values())

    async def click_home_button(
        self, user_id: str, action_id: str, *, url: str | None = None
    ) -> dict[str, Any] | None:
        """`user_id` clicks the button `action_id` on their App Home tab; the app gets a
        `block_actions` payload with a fresh trigger_id (over HTTP to `url` if given)."""
        home = self.workspace.home_views.get(user_id)
        found = find_button(home.view, action_id) if home else None
        if home is None or found is None:
            raise ValueError(f"{user_id}'s Home tab has no button {action_id!r}")
        block_id, button = found
        view = {**home.view, "id": home.id, "hash": home.hash}
        payload = block_actions_payload(
            self.workspace,
            user_id=user_id,
            container_view=view,
            block_id=block_id,
            button=button,
            trigger_id=self.triggers.issue(user_id),
        )
        return await self.send_interactive(payload, url=url)

    async def submit_modal(
        self, view_id: str, typed: dict[str, Any] | None = None, *, url: str | None = None
    ) -> SubmissionResult:
        """The modal's owner presses submit with `typed` values (block_id → value; the other
        inputs keep their initial values); the app's answer is applied as Slack applies it."""
        modal = self.views.modals.get(view_id)
        if modal is None or modal.closed:
            raise ValueError(f"no open modal {view_id!r}")
        trigger = self.triggers.issue(modal.user_id)
        payload = view_submission_payload(self.workspace, self.views, modal, typed or {}, trigger)
        body = await self.send_interactive(payload, url=url)
        return self.views.apply_submission_response(modal, body or {})

    async def send_interactive(
        self, payload: dict[str, Any], *, url: str | None = None
    ) -> dict[str, Any] | None:
        """Deliver an interaction payload (any, even a forged one) over Socket Mode, or signed
        to `url` in HTTP mode; returns the app's answer body (None when it sent none)."""
        if not self.manifest.interactivity:
            raise RuntimeError("manifest.yml has interactivity disabled: Slack sends no payloads")
        if url is None:
            ack = await self.socket.deliver("interactive", payload, accepts_response_payload=True)
            if ack.timed_out:
                raise TimeoutError("the app did not acknowledge the interaction within 3 s")
            return ack.payload
        body = form_body({"payload": json.dumps(payload, separators=(",", ":"))})
        status, text, content_type, latency = await post_signed(
            url, body, self.signed_request(body)
        )
        if status != 200 or latency > self.socket.ack_timeout_s:
            raise TimeoutError(f"the app answered the interaction with HTTP {status}")
        return command_response(text, content_type) or None

    # ------------------------------------------------------------ helpers

    def _command_payload(
        self, entry: ResponseUrl, text: str, user_id: str, channel_id: str, command: str
    ) -> dict[str, str]:
        payload = slash_command_payload(
            self.workspace,
            text=text,
            user_id=user_id,
            channel_id=channel_id,
            command=command,
            response_url=entry.url,
            should_escape=self.manifest.commands.get(command, False),
        )
        # The command's trigger_id may open a modal, once and within three seconds.
        self.triggers.register(payload["trigger_id"], user_id)
        return payload

    def _show_command_response(self, entry: ResponseUrl, body: dict[str, Any]) -> None:
        """An immediate command response is shown like a response_url post: Slack's rule."""
        text, blocks = str(body.get("text") or ""), body.get("blocks") or []
        if not text and not blocks:
            return
        if body.get("response_type") == "in_channel":
            ws = self.workspace
            entry.last = ws.post(
                Message(
                    entry.channel,
                    ws.clock.next(),
                    ws.bot_user_id,
                    text=text,
                    blocks=blocks,
                    bot_id=ws.bot_id,
                    app_id=ws.app_id,
                )
            )
        else:
            self.response_urls.show_ephemeral(entry, text, blocks, source="ack")

    def _operation_failed(self, entry: ResponseUrl, command: str, error: str) -> None:
        self.response_urls.show_ephemeral(
            entry, f'{command} failed with the error "{error}"', [], source="slack"
        )


def _element(message: Message, action_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The block and interactive element with `action_id` that `message` shows."""
    for block in message.blocks:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block, element
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("action_id") == action_id:
            return block, accessory
    raise ValueError(f"message {message.ts} shows no element with action_id {action_id!r}")
