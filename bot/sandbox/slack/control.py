"""The Slack sandbox's control API, for people and out-of-process tools.

`orchestrate-bot sandbox` runs the sandbox as a server; this small HTTP surface lets a shell
or another process act as Slack's users: `POST /_sandbox/slash` (JSON `{text, user_id?,
channel_id?, command?}`) delivers a slash command over Socket Mode and answers the ack as
JSON; `GET /_sandbox/transcript/{channel_id}` answers the channel as text;
`POST /_sandbox/fail_next` (JSON with `SlackSandbox.fail_next`'s arguments plus `method`)
injects failures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

from aiohttp import web

from bot.sandbox.slack.socket import Ack


class SlackSandbox(Protocol):
    """What the control API drives: the sandbox server, seen from here (a protocol, so this
    module does not import the server that imports it)."""

    async def send_slash_command(
        self, *, text: str, user_id: str, channel_id: str, command: str
    ) -> Ack: ...

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
    try:
        ack = await sandbox.send_slash_command(
            text=str(body.get("text", "")),
            user_id=body.get("user_id", "U0ALICE"),
            channel_id=body.get("channel_id", "C0GENERAL"),
            command=body.get("command", "/orchestrate"),
        )
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
