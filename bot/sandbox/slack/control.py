"""The Slack sandbox's control API, for people and out-of-process tools.

`orchestrate-bot sandbox` runs the sandbox as a server; this small HTTP surface lets a shell
or another process act as Slack's users: `POST /_sandbox/slash` (JSON `{text, user_id?,
channel_id?, command?, url?}`) delivers a slash command, over Socket Mode, or, when the
sandbox has an `events_url` (or the body names a `url`), as a signed form POST to that
HTTP-mode app, as Slack does with Socket Mode off; it answers the ack as JSON.
`GET /_sandbox/transcript/{channel_id}` answers the channel as text;
`POST /_sandbox/fail_next` (JSON with `SlackSandbox.fail_next`'s arguments plus `method`)
injects failures. docs/sandbox.md documents them for people.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import aiohttp
from aiohttp import web

from bot.sandbox.slack.socket import Ack


class SlackSandbox(Protocol):
    """What the control API drives: the sandbox server, seen from here (a protocol, so this
    module does not import the server that imports it)."""

    events_url: str | None

    async def send_slash_command(
        self, *, text: str, user_id: str, channel_id: str, command: str
    ) -> Ack: ...

    async def post_slash_command_http(
        self, url: str, *, text: str, user_id: str, channel_id: str, command: str
    ) -> tuple[int, str, float]: ...

    def transcript(self, channel_id: str) -> str: ...

    def fail_next(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_routes(sandbox: SlackSandbox) -> list[web.RouteDef]:
    def bound(handler: Callable[[SlackSandbox, web.Request], Awaitable[web.Response]]) -> Handler:
        return partial(handler, sandbox)

    return [
        web.post("/_sandbox/slash", bound(_slash)),
        web.get("/_sandbox/transcript/{channel_id}", bound(_transcript)),
        web.post("/_sandbox/fail_next", bound(_fail_next)),
    ]


async def _slash(sandbox: SlackSandbox, request: web.Request) -> web.Response:
    body = await request.json()
    command = {
        "text": str(body.get("text", "")),
        "user_id": str(body.get("user_id", "U0ALICE")),
        "channel_id": str(body.get("channel_id", "C0GENERAL")),
        "command": str(body.get("command", "/orchestrate")),
    }
    url = body.get("url") or sandbox.events_url
    if url:
        return await _slash_over_http(sandbox, str(url), command)
    try:
        ack = await sandbox.send_slash_command(**command)
    except (RuntimeError, ValueError) as exc:
        return web.json_response({"ok": False, "error": str(exc)}, status=409)
    return web.json_response(
        {
            "ok": True,
            "envelope_id": ack.envelope_id,
            "payload": ack.payload,
            "latency_s": ack.latency_s,
            "timed_out": ack.timed_out,
        }
    )


async def _slash_over_http(
    sandbox: SlackSandbox, url: str, command: dict[str, str]
) -> web.Response:
    """The command as Slack sends it to an HTTP-mode app: a signed form POST to `url`."""
    try:
        status, answer, latency_s = await sandbox.post_slash_command_http(url, **command)
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = f"could not reach the app at {url}: {exc or type(exc).__name__}"
        return web.json_response({"ok": False, "error": error}, status=502)
    return web.json_response(
        {"ok": status == 200, "url": url, "status": status, "body": answer, "latency_s": latency_s}
    )


async def _transcript(sandbox: SlackSandbox, request: web.Request) -> web.Response:
    try:
        return web.Response(text=sandbox.transcript(request.match_info["channel_id"]))
    except KeyError as exc:
        return web.Response(status=404, text=f"{exc}\n")


async def _fail_next(sandbox: SlackSandbox, request: web.Request) -> web.Response:
    body = await request.json()
    sandbox.fail_next(
        str(body["method"]),
        error=body.get("error"),
        status=int(body.get("status", 200)),
        retry_after=body.get("retry_after"),
        times=int(body.get("times", 1)),
    )
    return web.json_response({"ok": True})
