"""Health and metrics endpoints: `/livez`, `/readyz` (= `/healthz`) and `/metrics`.

`/livez` answers 200 while the process serves HTTP at all: a liveness probe that restarts
the process only when it is wedged, never because Slack or the database is away (a restart
would not bring them back). `/readyz` (and `/healthz`, its older name) answers 200 only when
start-up has finished, the database answers a query, and Slack is there: the Socket Mode
connection is up, or in HTTP mode the bot token's `auth.test` passed (checked again at most
every `SLACK_RECHECK_S`). Otherwise 503, with a JSON body saying which part is not ready
and why, so an operator reading it knows where to look. `/metrics` is the Prometheus text
format; with `METRICS_TOKEN` set it answers only a request carrying
`Authorization: Bearer <token>` (401 otherwise), since in HTTP mode it shares the port Slack
posts to, which is public. The health routes stay open: probes carry no token and they
reveal no figures. The same routes serve HTTP mode's app and Socket Mode's `METRICS_PORT`
server (which listens on `METRICS_HOST`, loopback by default).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from bot.slack.metrics import CONTENT_TYPE, Metrics

DATABASE_TIMEOUT_S = 2.0
SLACK_RECHECK_S = 30.0
SlackProbe = Callable[[], Awaitable[str | None]]  # None: fine; else what is wrong


class Database(Protocol):
    """What readiness asks of the ledger's database: any query that must answer."""

    async def schema_version(self) -> int: ...


@dataclass
class Health:
    """What readiness depends on; the server fills it in as start-up goes."""

    metrics: Metrics
    database: Database | None = None
    slack: SlackProbe | None = None
    waiting_for: str | None = "start-up"  # what start-up is waiting for; None once done
    in_flight: Callable[[], int] = field(default=lambda: 0)
    metrics_token: str | None = None  # `/metrics` wants it as a bearer token when set

    async def problems(self) -> dict[str, str]:
        """Each part that is not ready, with why; empty when everything is."""
        problems: dict[str, str] = {}
        if self.waiting_for is not None:
            problems["start-up"] = f"waiting for {self.waiting_for}"
        if (database := await self._database()) is not None:
            problems["database"] = database
        slack = await self.slack() if self.waiting_for is None and self.slack else None
        if slack is not None:
            problems["slack"] = slack
        return problems

    async def _database(self) -> str | None:
        if self.database is None:
            return "not open yet"
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT_S):
                await self.database.schema_version()
        except Exception as exc:  # any failure to answer is "not ready", whatever its type
            return f"did not answer ({type(exc).__name__})"
        return None


HEALTH = web.AppKey("health", Health)


def add_routes(app: web.Application) -> None:
    """Add the health and metrics routes; `app[HEALTH]` must be set before serving."""
    app.router.add_get("/livez", _livez)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/healthz", _readyz)
    app.router.add_get("/metrics", _metrics)


def health_app(health: Health) -> web.Application:
    """Socket Mode's small server on `METRICS_PORT`."""
    app = web.Application()
    app[HEALTH] = health
    add_routes(app)
    return app


async def _livez(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _readyz(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    problems = await health.problems()
    body = {"ok": not problems, "runs_in_flight": health.in_flight(), **problems}
    return web.json_response(body, status=503 if problems else 200)


async def _metrics(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    if health.metrics_token is not None and not _bearer_is(request, health.metrics_token):
        return web.json_response(
            {"ok": False, "error": "send the METRICS_TOKEN as Authorization: Bearer <token>"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = health.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _bearer_is(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Compared in constant time: how long a wrong guess took must not tell how close it was.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


class CachedProbe:
    """A Slack probe asked at most every `every_s`: a health check polled each second
    must not become a stream of `auth.test` calls."""

    def __init__(self, probe: SlackProbe, *, every_s: float = SLACK_RECHECK_S) -> None:
        self._probe = probe
        self._every_s = every_s
        self._last: tuple[float, str | None] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> str | None:
        async with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last[0] >= self._every_s:
                self._last = (now, await self._probe())
            return self._last[1]
