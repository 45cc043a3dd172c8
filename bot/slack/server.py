"""Serving: HTTP mode (an aiohttp app) and Socket Mode, with one start-up and shutdown.

Start-up, in both modes: open the services (the database is opened here: a refusal stops
the process), bind the port (HTTP's, or Socket Mode's `METRICS_PORT`; one in use stops the
process), then check the Claude API key and models, the bot token, and in Socket Mode the
app token. A refusal raises `SettingsError` (exit 2, one line); a dependency that does not
answer is waited for (`bot.startup.until_answered`) while `/readyz` says what start-up is
waiting for. Those Slack checks (and readiness's recheck of the bot token) make one attempt
each, on a client without the outage retries: retried for a minute underneath, an outage
would go unlogged that long and each "next try in 1 s" would be a minute late. Only then is
the Bolt app built and, in Socket Mode, the WebSocket connected.

HTTP mode is an aiohttp `web.Application` whose `cleanup_ctx` opens the services (keyed
with `web.AppKey`) and on shutdown drains runs in flight before closing them; Slack posts
to `/slack/events` (signature, timestamp, content type and shape checked by `bot.slack.gate`
before Bolt sees the request, the body bounded to `BODY_TIMEOUT_S`). It is served by
`http_runner`, whose options bound a slow client's headers: aiohttp closes a connection that
has not sent a whole request line and headers within `ORCHESTRATE_HTTP_HEADER_TIMEOUT_S` of
opening (or of its last answer), and gives a refused request's unread body only `LINGER_S`.
Both modes stop on SIGTERM or SIGINT: first stop taking commands, then let runs finish (or
mark them interrupted), then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.logs import fields, start_up_done
from bot.settings import Settings, SettingsError
from bot.slack import gate
from bot.slack import health as health_routes
from bot.slack.app import build_app
from bot.slack.deps import OpenServices, Services
from bot.slack.health import HEALTH, CachedProbe, Health
from bot.slack.metrics import Metrics
from bot.slack.poster import SLACK_FAILURES, describe, slack_error
from bot.startup import Unreachable, listen_refusal, until_answered

S = TypeVar("S", bound=Services)

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
# How long a Slack request that arrives during start-up may wait for it (Slack gives 3 s).
READY_WAIT_S = 2.0
# Slack error codes that say "try again later", not "this token is wrong".
SLACK_TRANSIENT = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# Slack sends each request whole and gives up on its answer after 3 s: a client slower than
# these is not Slack, and must not hold a connection (and a handler) for long. The header
# bound is also how long an idle keep-alive connection is kept (aiohttp has one timer for
# both): ORCHESTRATE_HTTP_HEADER_TIMEOUT_S raises it above a load balancer's idle timeout.
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = gate.BODY_TIMEOUT_S
LINGER_S = 1.0  # aiohttp reads on for 10 s by default after answering without the body
BOT_TOKEN_FIX = "set the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page"
APP_TOKEN_FIX = (
    "set an app-level token (xapp-…) with connections:write, from the app's Basic Information page"
)
# A start-up check that hangs is an unanswered try after this long (the services' client
# would wait 30 s); the next try then comes when the warning says.
CHECK_TIMEOUT_S = 10


@dataclass
class Serving:
    """HTTP mode's state: the services, readiness, and Bolt once start-up has finished."""

    services: Services
    health: Health
    verifier: SignatureVerifier
    body_timeout_s: float = BODY_TIMEOUT_S
    bolt: AsyncApp | None = None
    started: asyncio.Task[None] | None = None


SERVICES = web.AppKey("services", Services)
Current = Callable[[], Services | None]  # the services once open, None before
SERVING = web.AppKey("serving", Serving)


# -- start-up checks ---------------------------------------------------------------------


async def slack_check(
    call: Callable[[], Awaitable[AsyncSlackResponse]], *, variable: str, fix: str
) -> AsyncSlackResponse:
    """`call()`; a refusal names `variable` and the fix, no answer is `Unreachable`."""
    try:
        return await call()
    except SlackApiError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        error = slack_error(exc) or f"HTTP {status}"
        if status >= 500 or error in SLACK_TRANSIENT:
            raise Unreachable(f"Slack answered {error}") from None
        raise SettingsError(f"{variable} was refused by Slack ({error}): {fix}.") from None
    except (*SLACK_FAILURES, OSError) as exc:
        raise Unreachable(f"Slack could not be reached ({describe(exc)})") from None


def one_attempt(client: AsyncWebClient) -> AsyncWebClient:
    """`client`'s token, URL and session, without retry handlers: a start-up check's call."""
    return AsyncWebClient(
        token=client.token,
        base_url=client.base_url,
        session=client.session,
        timeout=CHECK_TIMEOUT_S,
        retry_handlers=[],  # None would mean slack_sdk's default: a retry on connection errors
    )


async def check_slack_auth(client: AsyncWebClient) -> str:
    """The installed workspace's team id; a refused bot token names the variable."""
    auth = await slack_check(
        lambda: client.auth_test(), variable="SLACK_BOT_TOKEN", fix=BOT_TOKEN_FIX
    )
    return str(auth["team_id"])


async def open_socket_url(client: AsyncWebClient, app_token: str) -> str:
    """A Socket Mode URL from `apps.connections.open`, which checks the app token."""
    response = await slack_check(
        lambda: client.apps_connections_open(app_token=app_token),
        variable="SLACK_APP_TOKEN",
        fix=APP_TOKEN_FIX,
    )
    return str(response["url"])


async def _check_dependencies(
    services: Services, health: Health, *, give_up_after_s: float | None = None
) -> str:
    """The Claude key and models, then the bot token (its team id is returned); waits out
    outages (for `give_up_after_s` each at most, when given), stops on refusals."""

    def waiting(why: str | None) -> None:
        health.waiting_for = why or "start-up"

    await until_answered(
        services.claude.check_models,
        what="the Claude API",
        waiting=waiting,
        give_up_after_s=give_up_after_s,
    )
    return await until_answered(
        partial(check_slack_auth, one_attempt(services.client)),
        what="Slack",
        waiting=waiting,
        give_up_after_s=give_up_after_s,
    )


# -- HTTP mode -----------------------------------------------------------------------------


def http_app(
    open_services: OpenServices,
    *,
    mount: Callable[[web.Application, Current], None] | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> web.Application:
    """The HTTP-mode application: `/slack/events`, the health routes and `/metrics`, and
    what `mount` adds (the web view, handed how to reach the services once open)."""
    app = web.Application()
    if mount is not None:
        mount(app, lambda: app.get(SERVICES))

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with open_services() as services:
            health = _health(services)
            verifier = SignatureVerifier(services.settings.slack_signing_secret or "")
            serving = Serving(services, health, verifier, body_timeout_s)
            app[SERVICES], app[SERVING], app[HEALTH] = services, serving, health
            serving.started = asyncio.create_task(_start_http(serving), name="start-up")
            try:
                yield
            finally:
                serving.started.cancel()
                with contextlib.suppress(asyncio.CancelledError, SettingsError):
                    await serving.started
                log.info("stopped taking Slack events")

    app.cleanup_ctx.append(lifespan)
    app.router.add_post(EVENTS_PATH, _slack_events)
    health_routes.add_routes(app)
    return app


def _health(services: Services) -> Health:
    return Health(
        metrics=services.metrics,
        database=services.database,
        in_flight=lambda: services.runs.in_flight,
        metrics_token=services.settings.metrics_token,
    )


async def _start_http(serving: Serving) -> None:
    services = serving.services
    team_id = await _check_dependencies(services, serving.health)
    serving.health.slack = CachedProbe(partial(_auth_problem, services))
    serving.bolt = build_app(services, http=True, team_id=team_id)
    serving.health.waiting_for = None
    log.info("ready: taking Slack events")
    start_up_done()


async def _auth_problem(services: Services) -> str | None:
    try:
        await check_slack_auth(one_attempt(services.client))
    except (Unreachable, SettingsError) as exc:
        return str(exc)
    return None


async def _slack_events(request: web.Request) -> web.Response:
    serving = request.app[SERVING]
    if serving.bolt is None and serving.started is not None:
        await asyncio.wait({serving.started}, timeout=READY_WAIT_S)
    if serving.bolt is None:
        return web.json_response({"ok": False, "status": "starting"}, status=503)
    received = time.monotonic()
    admitted = await gate.admit(request, serving.verifier, body_timeout_s=serving.body_timeout_s)
    if isinstance(admitted, gate.Refused):
        return web.json_response({"error": admitted.reason}, status=admitted.status)
    bolt_response = await serving.bolt.async_dispatch(admitted)
    serving.services.metrics.ack_latency.observe(time.monotonic() - received)
    return await to_aiohttp_response(bolt_response)


async def serve_http(
    settings: Settings,
    open_services: OpenServices,
    *,
    port: int,
    host: str = "0.0.0.0",
    mount: Callable[[web.Application, Current], None] | None = None,
) -> None:
    settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "ANTHROPIC_API_KEY")
    app = http_app(open_services, mount=mount)
    runner = http_runner(app, header_timeout_s=settings.http_header_timeout_s)
    async with stop_signals() as stop:
        await runner.setup()
        try:
            await bind(runner, host, port, name="--port")
            log.info("serving Slack events on http://%s:%d%s", host, port, EVENTS_PATH)
            started = app[SERVING].started
            assert started is not None
            if await _first(started, stop):
                await stop.wait()
        finally:
            log.info("shutting down")
            await runner.cleanup()
            log.info("stopped")


def http_runner(
    app: web.Application, *, header_timeout_s: float = HEADER_TIMEOUT_S
) -> web.AppRunner:
    """How HTTP mode serves `app`: headers bounded (`keepalive_timeout` also closes a
    connection still sending its first request's headers), a refused body not read on for
    long, and a handler not cancelled when its client goes (a run's admission must finish).
    No access log: a refused request is logged once, by the gate, with its reason; a flood
    of posts must not add a second line each."""
    return web.AppRunner(
        app, access_log=None, keepalive_timeout=header_timeout_s, lingering_time=LINGER_S
    )


async def bind(runner: web.AppRunner, host: str, port: int, *, name: str) -> None:
    """Listen on `port`; one already in use (or not ours to take) stops the process."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        refusal = listen_refusal(exc, f"{name} {port}")
        if refusal is not None:
            raise SettingsError(refusal) from None
        raise


async def _first(started: asyncio.Task[None], stop: asyncio.Event) -> bool:
    """Wait for start-up or a stop signal; True when start-up finished first (its error,
    a refusal, is raised here), False when stopped while still starting."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({started, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not started.done():
        log.info("stopped while starting")
        return False
    started.result()
    return True


# -- Socket Mode ---------------------------------------------------------------------------


class _TimedHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, timing each envelope from arrival to acknowledgement."""

    metrics: Metrics

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]  # Bolt narrows it too
        received = time.monotonic()
        await super().handle(client, req)  # returns once the ack is sent
        self.metrics.ack_latency.observe(time.monotonic() - received)


@contextlib.asynccontextmanager
async def socket_mode_app(
    settings: Settings,
    open_services: Callable[[], AbstractAsyncContextManager[S]],
    *,
    metrics_host: str | None = None,
    give_up_after_s: float | None = None,
    mount: Callable[[web.Application, S], None] | None = None,
) -> AsyncIterator[S]:
    """The app connected over Socket Mode for the duration of the `async with`, with
    `/metrics` and the health routes on `METRICS_PORT` when it is set, listening on
    `metrics_host` (`serve --host`), else `METRICS_HOST` (this machine only unless the
    operator says otherwise). A dependency that does not answer is waited for, for
    `give_up_after_s` at most when given (`GaveUp`)."""
    settings.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "ANTHROPIC_API_KEY")
    host = metrics_host or settings.metrics_host
    async with open_services() as services:
        health = _health(services)
        add = None if mount is None else _mounting(mount, services)
        own_port = settings.web_port if add is not None else None  # else beside /metrics
        async with (
            _health_server(settings.metrics_port, host, health, None if own_port else add),
            # Browsers must reach the web view's own port: every interface unless --host.
            _web_server(own_port, metrics_host or "0.0.0.0", add),
        ):
            handler = await _connect(services, health, give_up_after_s=give_up_after_s)
            try:
                yield services
            finally:
                # Stop taking commands first; leaving `open_services` then drains the runs.
                await handler.close_async()  # type: ignore[no-untyped-call]
                log.info("disconnected from Slack")


async def _connect(
    services: Services, health: Health, *, give_up_after_s: float | None = None
) -> AsyncSocketModeHandler:
    team_id = await _check_dependencies(services, health, give_up_after_s=give_up_after_s)
    app_token = services.settings.slack_app_token or ""
    url = await until_answered(
        partial(open_socket_url, one_attempt(services.client), app_token),
        what="Slack",
        waiting=lambda why: setattr(health, "waiting_for", why or "start-up"),
        give_up_after_s=give_up_after_s,
    )
    handler = _TimedHandler(
        build_app(services, http=False, team_id=team_id),
        app_token=app_token,
        web_client=services.client,
    )
    handler.metrics = services.metrics
    handler.client.wss_uri = url  # the URL just issued: the token check costs no ticket
    await handler.connect_async()  # type: ignore[no-untyped-call]
    health.slack = partial(_socket_problem, handler.client)
    health.waiting_for = None
    log.info("connected to Slack in Socket Mode")
    start_up_done()
    return handler


async def _socket_problem(client: AsyncBaseSocketModeClient) -> str | None:
    if await client.is_connected():
        return None
    return "the Socket Mode connection is down (reconnecting)"


def _mounting(
    mount: Callable[[web.Application, S], None], services: S
) -> Callable[[web.Application], None]:
    return lambda app: mount(app, services)


@contextlib.asynccontextmanager
async def _web_server(
    port: int | None, host: str, mount: Callable[[web.Application], None] | None
) -> AsyncIterator[None]:
    """Socket Mode's web pages on their own port (`WEB_PORT`), when one is set."""
    if port is None or mount is None:
        yield
        return
    app = web.Application()
    mount(app)
    async with _side_server(app, host, port, name="WEB_PORT", serving="the web view"):
        yield


@contextlib.asynccontextmanager
async def _health_server(
    port: int | None,
    host: str,
    health: Health,
    mount: Callable[[web.Application], None] | None = None,
) -> AsyncIterator[None]:
    """`/metrics` and the health routes on `port`, with what `mount` adds (the web view)."""
    if port is None:
        yield
        return
    app = health_routes.health_app(health)
    if mount is not None:
        mount(app)
    async with _side_server(app, host, port, name="METRICS_PORT", serving="/metrics and /healthz"):
        yield


@contextlib.asynccontextmanager
async def _side_server(
    app: web.Application, host: str, port: int, *, name: str, serving: str
) -> AsyncIterator[None]:
    """Socket Mode's own small HTTP servers: bound (a port in use names `name`), then run."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await bind(runner, host, port, name=name)
        log.info("serving %s", serving, extra=fields(host=host, port=port))
        yield
    finally:
        await runner.cleanup()


async def serve_socket_mode(
    settings: Settings,
    open_services: OpenServices,
    *,
    host: str | None = None,
    mount: Callable[[web.Application, Services], None] | None = None,
) -> None:
    """Socket Mode until SIGTERM or SIGINT (which also ends a start-up still waiting);
    `METRICS_PORT` on `host`, else on `METRICS_HOST`."""
    connected = asyncio.Event()

    async def run(stop: asyncio.Event) -> None:
        async with socket_mode_app(settings, open_services, metrics_host=host, mount=mount):
            connected.set()
            await stop.wait()
            log.info("shutting down")

    async with stop_signals() as stop:
        serving = asyncio.create_task(run(stop), name="socket-mode")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not serving.done() and not connected.is_set():
            log.info("stopped while starting")
            serving.cancel()  # nothing runs yet: no run to drain
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    log.info("stopped")


@contextlib.asynccontextmanager
async def stop_signals() -> AsyncIterator[asyncio.Event]:
    """An event set on SIGTERM or SIGINT (Ctrl-C) while inside the `async with`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopping(sig: signal.Signals) -> None:
        log.info("received %s", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping, sig)
    try:
        yield stop
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def wait_for_stop_signal() -> None:
    """Return on SIGTERM or SIGINT (Ctrl-C)."""
    async with stop_signals() as stop:
        await stop.wait()
