"""The process's owned resources, opened together and closed in reverse.

`open_services(settings)` builds everything a running bot needs (price table, ledger,
Claude client, pipeline, Slack Web API client and poster, run registry) and, on exit,
drains runs in flight before closing what they use. Both serving modes and the demo go
through it, so nothing is a module-level singleton and shutdown is the same everywhere.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import cast

import aiohttp
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.claude import Claude
from bot.core.pipeline import Pipeline
from bot.core.pricing import PriceTable
from bot.ledger import (
    BudgetUse,
    CallsExport,
    CostReports,
    EvalResults,
    Feedback,
    GovernanceStore,
    Ledger,
    PageReader,
    RunLookup,
    StopRequests,
    ledger_for,
)
from bot.logs import database_location
from bot.settings import Settings, SettingsError
from bot.slack import server, workflows
from bot.slack.budget_alerts import BudgetWatch, Delivery, Digest
from bot.slack.conversations import Conversations
from bot.slack.deps import Services as EdgeServices
from bot.slack.engine import Engine, open_engine
from bot.slack.lease import Lease
from bot.slack.liveness import Liveness
from bot.slack.metrics import CountingRetryHandler, Metrics
from bot.slack.poster import Poster, describe
from bot.slack.retry import retry_handlers
from bot.slack.runs import Runs
from bot.slack.updates import UpdateLimit
from bot.web import Sessions, WebDeps, WebView
from bot.web import mount as web_mount

log = logging.getLogger(__name__)
# A Slack call that hangs is given up after this long (and retried by bot.slack.retry when
# that is safe); aiohttp's own default would wait five minutes.
SLACK_CALL_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    prices: PriceTable
    ledger: Ledger
    claude: Claude
    pipeline: Pipeline
    client: AsyncWebClient
    poster: Poster
    runs: Runs
    conversations: Conversations
    metrics: Metrics
    digest: Digest

    @property
    def reports(self) -> CostReports:
        return self.ledger.reports

    @property
    def governance(self) -> GovernanceStore:
        return self.ledger.governance

    @property
    def run_lookup(self) -> RunLookup:
        return self.ledger.runs

    @property
    def stops(self) -> StopRequests:
        return self.ledger.interactions

    @property
    def feedback(self) -> Feedback:
        return self.ledger.interactions

    @property
    def evals(self) -> EvalResults:
        return self.ledger.evals

    @property
    def database(self) -> Ledger:
        return self.ledger

    @property
    def export(self) -> CallsExport:
        return self.ledger.export

    @property
    def pages(self) -> PageReader:
        return self.ledger.pages

    @property
    def budgets(self) -> BudgetUse:
        return self.ledger.budgets


def _web_deps(services: Services) -> WebDeps:
    return services  # mypy checks here that the services are all the web view reads


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    prices = PriceTable.load(settings.prices_file)
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        ledger = await _open_ledger(stack, settings)
        claude = Claude.from_settings(settings, price=prices.cost)
        stack.push_async_callback(claude.aclose)
        session = await stack.enter_async_context(aiohttp.ClientSession(timeout=SLACK_CALL_TIMEOUT))
        client = slack_client(settings, session, metrics=metrics)
        poster = Poster(
            client,
            rate=settings.slack_posts_per_s,
            update_limit=UpdateLimit(settings.slack_update_limit, settings.slack_update_window_s),
        )
        # Closed after the runs have drained (and before the session): their last edits of
        # their first messages may still be queued, and are sent or named then.
        stack.push_async_callback(poster.close, settings.drain_grace_s)
        pipeline = Pipeline(claude, settings=settings, prices=prices)
        ttl = timedelta(seconds=settings.instance_ttl_s)
        executor_id = await ledger.instances.claim(ttl=ttl, named=settings.instance_id)
        lease = Lease(ttl_s=settings.instance_ttl_s, margin_s=settings.heartbeat_s)
        poster.fence(lease.check)
        runs = Runs(
            pipeline=pipeline,
            ledger=ledger.writer,
            governance=ledger.governance,
            poster=poster,
            settings=settings,
            engine=Engine(executor_id),
            stops=ledger.interactions,
            metrics=metrics,
            pages=ledger.pages if settings.web_url else None,
        )
        deliver = Delivery(settings=settings, client=client)
        watch = runs.on_finished = BudgetWatch(
            settings=settings,
            ledger=ledger.budgets,
            governance=ledger.governance,
            deliver=deliver,
            engine=runs.engine,
        )
        digest = Digest(
            settings=settings,
            reports=ledger.reports,
            feedback=ledger.interactions,
            governance=ledger.governance,
            deliver=deliver,
        )
        # Follow-ups write through the same writer as runs: their writes wait out an outage too.
        conversations = Conversations(
            runs=runs,
            pipeline=pipeline,
            ledger=ledger.writer,
            poster=poster,
            settings=settings,
        )
        runs.lease = lease
        runs.alive = partial(ledger.instances.live_ids, ttl=ttl)
        workflows.register(runs)
        workflows.register_conversations(conversations, runs)
        stack.callback(workflows.unregister, runs)
        workflows.register_alerts(watch, digest)
        stack.callback(workflows.unregister_alerts, watch, digest)
        liveness = Liveness(
            instances=ledger.instances,
            poster=poster,
            interval_s=settings.heartbeat_s,
            ttl_s=settings.instance_ttl_s,
            longest_run=longest_run(settings),
            engine=runs.engine,
            lease=lease,
            on_lost=_stop_serving if settings.exit_when_fenced else None,
        )
        # The engine resumes this instance's own unfinished runs as it launches (they wait
        # for the first heartbeat's lease). Launched before any other task of ours runs:
        # DBOS's launch blocks the loop while it migrates its tables, and on PostgreSQL its
        # CREATE INDEX CONCURRENTLY waits for every open transaction (one of ours would
        # never finish while the loop is blocked).
        await stack.enter_async_context(open_engine(settings, executor_id=executor_id))
        # The weekly digest: a schedule of the engine's, kept in its tables (created or
        # brought up to date by every instance; each week fired once across them).
        await workflows.schedule_digest(settings.digest_cron)
        await liveness.start_beating()
        stack.push_async_callback(liveness.stop)
        # Resumes the runs dead instances left, and keeps beating.
        await liveness.start()
        # Registered last, so it runs first: runs finish while their resources are open.
        stack.push_async_callback(runs.drain, settings.drain_grace_s)
        yield Services(
            settings=settings,
            prices=prices,
            ledger=ledger,
            claude=claude,
            pipeline=pipeline,
            client=client,
            poster=poster,
            runs=runs,
            conversations=conversations,
            metrics=metrics,
            digest=digest,
        )


async def _open_ledger(stack: contextlib.AsyncExitStack, settings: Settings) -> Ledger:
    """Open the ledger; a database that cannot be used stops the process in one line."""
    where = database_location(settings.database_url)
    try:
        return await stack.enter_async_context(ledger_for(settings))
    except ModuleNotFoundError as exc:
        if exc.name != "asyncpg":
            raise
        raise SettingsError(
            "DATABASE_URL is a PostgreSQL URL but its driver is not installed: "
            "pip install 'orchestrate[postgres]'."
        ) from None
    except (OSError, TimeoutError) as exc:
        raise SettingsError(
            f"DATABASE_URL: could not connect to {where} ({describe(exc)}); "
            "check that the server is running and the URL is right."
        ) from None
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        raise SettingsError(f"DATABASE_URL: {where} refused the connection: {exc}.") from None


def _is_database_error(exc: Exception) -> bool:
    """An error the database driver raised (wrong password, no such database, …)."""
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("asyncpg")


def _stop_serving() -> None:
    """This instance was declared dead while it was frozen: it stops (SIGTERM, the same
    clean stop a supervisor asks for), and its supervisor starts it afresh."""
    signal.raise_signal(signal.SIGTERM)


def longest_run(settings: Settings) -> timedelta:
    """An upper bound on a run's life: four sequential call timeouts (plan, repair, the
    parallel examples, review), their SDK retries, and time to post the thread. Runs
    written before run owners were recorded are taken as dead once older than this."""
    calls = 4 * (settings.anthropic_max_retries + 1)
    return timedelta(seconds=calls * settings.call_timeout_s + 300)


def slack_client(
    settings: Settings,
    session: aiohttp.ClientSession | None = None,
    *,
    metrics: Metrics | None = None,
) -> AsyncWebClient:
    # Bolt's per-request clients copy these handlers, so their failures are counted too.
    counting = [CountingRetryHandler(metrics)] if metrics is not None else []
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        session=session,
        retry_handlers=[*counting, *retry_handlers()],
    )


def http_app(
    settings: Settings, *, body_timeout_s: float = server.BODY_TIMEOUT_S
) -> web.Application:
    """HTTP mode's aiohttp application, wired to this process's services."""
    return server.http_app(
        partial(open_services, settings),
        mount=_http_pages(settings),
        body_timeout_s=body_timeout_s,
    )


def socket_mode_app(
    settings: Settings, *, give_up_after_s: float | None = None
) -> contextlib.AbstractAsyncContextManager[Services]:
    """The app connected over Socket Mode for the duration of the `async with`; a
    dependency away at start is waited for (`give_up_after_s` at most, when given)."""
    return server.socket_mode_app(
        settings,
        partial(open_services, settings),
        give_up_after_s=give_up_after_s,
        mount=_socket_pages(settings),
    )


def _http_pages(settings: Settings) -> Callable[[web.Application, server.Current], None] | None:
    """The web view on HTTP mode's own port, when ORCHESTRATE_WEB_URL is set."""
    if not settings.web_url:
        return None
    sessions = Sessions(settings)

    def mount(app: web.Application, current: server.Current) -> None:
        web_mount(app, WebView(lambda: cast("WebDeps | None", current()), sessions))

    return mount


def _socket_pages(settings: Settings) -> Callable[[web.Application, EdgeServices], None] | None:
    """The web view in Socket Mode: on WEB_PORT, or beside /metrics on METRICS_PORT."""
    if not settings.web_url:
        return None
    if settings.web_port is None and settings.metrics_port is None:
        raise SettingsError(
            "ORCHESTRATE_WEB_URL is set but Socket Mode has no port to serve the pages on: "
            "set WEB_PORT (or METRICS_PORT, to serve them beside /metrics)"
        )
    sessions = Sessions(settings)

    def mount(app: web.Application, services: EdgeServices) -> None:
        # The edge's protocol names less than the services are (`_web_deps` checks them).
        web_mount(app, WebView(lambda: cast(WebDeps, services), sessions))

    return mount


async def serve(settings: Settings, *, http: bool, port: int, host: str | None) -> None:
    """`orchestrate-bot serve`: until SIGTERM or SIGINT. Without `host`, HTTP mode (and the
    web view's own port) listens on every interface and `METRICS_PORT` on `METRICS_HOST`."""
    opener = partial(open_services, settings)
    if http:
        pages = _http_pages(settings)
        await server.serve_http(settings, opener, port=port, host=host or "0.0.0.0", mount=pages)
    else:
        await server.serve_socket_mode(settings, opener, host=host, mount=_socket_pages(settings))
