"""Serving: HTTP mode (an aiohttp app) and Socket Mode, with one start-up and shutdown.

HTTP mode is an aiohttp `web.Application` whose `cleanup_ctx` opens the services (keyed
with `web.AppKey`), checks the bot token with `auth.test`, and on shutdown drains runs in
flight before closing them. Slack posts to `/slack/events` (signature, timestamp and shape
checked by `bot.slack.gate` before Bolt sees the request);
`GET /healthz` answers 200 once start-up has finished. Socket Mode opens the same services
and connects a WebSocket with the app token. Both stop on SIGTERM or SIGINT: first stop
taking commands, then let runs finish (or mark them interrupted), then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.settings import Settings, SettingsError
from bot.slack import gate
from bot.slack.app import build_app
from bot.slack.deps import OpenServices, Services
from bot.slack.poster import describe

S = TypeVar("S", bound=Services)

log = logging.getLogger(__name__)
SERVICES = web.AppKey("services", Services)
BOLT = web.AppKey("bolt", AsyncApp)
VERIFIER = web.AppKey("verifier", SignatureVerifier)
EVENTS_PATH = "/slack/events"


def http_app(open_services: OpenServices) -> web.Application:
    """The HTTP-mode application: `/slack/events` and `/healthz`."""
    app = web.Application()

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with open_services() as services:
            team_id = await check_slack_auth(services)
            app[SERVICES] = services
            app[BOLT] = build_app(services, http=True, team_id=team_id)
            app[VERIFIER] = SignatureVerifier(services.settings.slack_signing_secret or "")
            yield

    app.cleanup_ctx.append(lifespan)
    app.router.add_post(EVENTS_PATH, _slack_events)
    app.router.add_get("/healthz", _healthz)
    return app


async def _slack_events(request: web.Request) -> web.Response:
    admitted = await gate.admit(request, request.app[VERIFIER])
    if isinstance(admitted, gate.Refused):
        return web.json_response({"error": admitted.reason}, status=admitted.status)
    return await to_aiohttp_response(await request.app[BOLT].async_dispatch(admitted))


async def _healthz(request: web.Request) -> web.Response:
    services = request.app.get(SERVICES)
    if services is None:
        return web.json_response({"ok": False, "status": "starting"}, status=503)
    return web.json_response({"ok": True, "runs_in_flight": services.runs.in_flight})


async def check_slack_auth(services: Services) -> str:
    """The installed workspace's team id; fails at start-up, naming the variable, if Slack
    refuses the bot token."""
    try:
        auth = await services.client.auth_test()
    except SlackApiError as exc:
        error = describe(exc)
        raise SettingsError(f"SLACK_BOT_TOKEN was refused by Slack ({error}).") from None
    return str(auth["team_id"])


async def serve_http(
    settings: Settings, open_services: OpenServices, *, port: int, host: str = "0.0.0.0"
) -> None:
    settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    # No access log: a refused request is logged once, by the gate, with its reason; a flood
    # of posts must not add a second line each.
    runner = web.AppRunner(http_app(open_services), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("serving Slack events on http://%s:%d%s", host, port, EVENTS_PATH)
        await wait_for_stop_signal()
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def socket_mode_app(
    settings: Settings, open_services: Callable[[], AbstractAsyncContextManager[S]]
) -> AsyncIterator[S]:
    """The app connected over Socket Mode for the duration of the `async with`."""
    settings.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")
    async with open_services() as services:
        team_id = await check_slack_auth(services)
        handler = AsyncSocketModeHandler(
            build_app(services, http=False, team_id=team_id),
            app_token=settings.slack_app_token,
            web_client=services.client,
        )
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode")
        try:
            yield services
        finally:
            # Stop taking commands first; leaving `open_services` then drains the runs.
            await handler.close_async()  # type: ignore[no-untyped-call]


async def serve_socket_mode(settings: Settings, open_services: OpenServices) -> None:
    """Socket Mode until SIGTERM or SIGINT."""
    async with socket_mode_app(settings, open_services):
        await wait_for_stop_signal()


async def wait_for_stop_signal() -> None:
    """Return on SIGTERM or SIGINT (Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
