"""The web view's routes, mounted on the app's own aiohttp server (`mount`).

| path | what |
|---|---|
| `/runs/{id}` | a run's page: three panes, bill, follow-ups (signed in, and allowed to see it) |
| `/runs/{id}/live` | server-sent events: the panes again whenever the run changes |
| `/admin`, `/admin.csv` | the spend dashboard and its numbers (admins) |
| `/web`, `/login`, `/auth/slack`, `/logout` | who is signed in; Sign in with Slack; sign out |
| `/web-static/{name}` | the stylesheet, the highlighting styles and the one small script |

Anyone not signed in is sent to sign in (with nothing of the run on the way); a signed-in
person who may not see a run gets the same "no such run" page as for a run that does not
exist, so a link tells a stranger nothing, not even that the run exists. Every answer
carries a strict Content-Security-Policy (scripts and styles from this app only, no inline
script, no frames), `no-store` and `no-referrer`.

Live pages poll the ledger (`PageReader.version`, one small query) every `LIVE_POLL_S`
while the run works, and every `IDLE_POLL_S` once it and its follow-ups have ended: the run
may be on another instance (they share PostgreSQL), so the ledger, not this process's
memory, is what every instance can watch. On a change the page's panes are drawn again and
sent whole (a few kB), so a page that missed an event still ends right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from urllib.parse import quote

from aiohttp import web

from bot.ledger import RunPage
from bot.settings import RUN_PAGE_PATH
from bot.web import access, dashboard
from bot.web.auth import CALLBACK_PATH, Sessions, SignInRefused, Viewer, authorize_url, exchange
from bot.web.deps import WebDeps
from bot.web.markdown import code_css
from bot.web.view import fold, panes_html, state

log = logging.getLogger(__name__)
LIVE_POLL_S = 0.2
IDLE_POLL_S = 2.0
KEEPALIVE_S = 15.0
MAX_LINKS = 10_000
LIVE_MAX_S = 1800.0  # a live stream ends after this; the browser reconnects by itself
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@dataclass
class WebView:
    """The web view's state on one server: how to reach the services, and the cookies."""

    get_deps: Callable[[], WebDeps | None]
    sessions: Sessions
    team_id: str | None = None  # the installed workspace (auth.test), once asked
    # Set at shutdown: live streams end at once instead of holding the server's shutdown.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    # Threads' permalinks, asked of Slack once each (a live page redraws many times).
    links: dict[tuple[str, str], str] = field(default_factory=dict)

    async def close(self, _app: web.Application) -> None:
        self.closing.set()

    async def team(self, deps: WebDeps) -> str | None:
        if self.team_id is None:
            try:
                self.team_id = str((await deps.client.auth_test())["team_id"])
            except Exception as exc:  # no answer now: ask again next time
                log.info("auth.test failed: %s", type(exc).__name__)
        return self.team_id


WEB = web.AppKey("web", WebView)


def mount(app: web.Application, view: WebView) -> None:
    """Add the web view's routes to `app` (HTTP mode's, or Socket Mode's metrics server)."""
    app[WEB] = view
    app.on_shutdown.append(view.close)
    app.router.add_get("/web", _home)
    app.router.add_get("/login", _login)
    app.router.add_get(CALLBACK_PATH, _callback)
    app.router.add_post("/logout", _logout)
    app.router.add_get(RUN_PAGE_PATH + "{run_id}", _run_page)
    app.router.add_get(RUN_PAGE_PATH + "{run_id}/live", _live)
    app.router.add_get("/admin", _admin)
    app.router.add_get("/admin.csv", _admin_csv)
    app.router.add_get("/web-static/{name}", _static)


# Pages ------------------------------------------------------------------------------------


def page(
    title: str, body: str, *, viewer: Viewer | None, status: int = 200, live: str = ""
) -> web.Response:
    account = (
        f'<span>Signed in as {escape(viewer.name)}</span> <form method="post" action="/logout">'
        '<button type="submit">Sign out</button></form>'
        if viewer
        else '<a href="/login">Sign in with Slack</a>'
    )
    live_attr = f' data-live="{escape(live)}"' if live else ""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · orchestrate</title>"
        '<link rel="stylesheet" href="/web-static/app.css">'
        '<link rel="stylesheet" href="/web-static/code.css">'
        '<script src="/web-static/app.js" defer></script></head><body>'
        '<a class="skip" href="#main">Skip to the content</a>'
        f'<nav class="top" aria-label="Account"><a href="/web">orchestrate</a> {account}</nav>'
        f'<main id="main"{live_attr}>{body}</main></body></html>'
    )
    return web.Response(text=html, content_type="text/html", status=status, headers=HEADERS)


def _not_found(viewer: Viewer | None) -> web.Response:
    body = (
        "<h1>No run to show</h1><p>There is no such run, or you cannot see it: a run is shown "
        "to people who can see the channel it was asked in, and to admins.</p>"
    )
    return page("No run to show", body, viewer=viewer, status=404)


def _deps(request: web.Request) -> tuple[WebView, WebDeps]:
    view = request.app[WEB]
    deps = view.get_deps()
    if deps is None:
        raise web.HTTPServiceUnavailable(text="starting: try again in a moment", headers=HEADERS)
    return view, deps


def _to_login(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}", headers=HEADERS)


async def _home(request: web.Request) -> web.Response:
    view, deps = _deps(request)
    viewer = view.sessions.viewer(request)
    if viewer is None:
        body = "<h1>orchestrate</h1><p>Sign in with Slack to see the runs you can see.</p>"
        return page("orchestrate", body, viewer=None)
    admin = await _is_admin(view, deps, viewer)
    link = '<p><a href="/admin">The spend dashboard</a></p>' if admin else ""
    body = f"<h1>orchestrate</h1><p>Open a run from the link in its Slack thread.</p>{link}"
    return page("orchestrate", body, viewer=viewer)


async def _login(request: web.Request) -> web.Response:
    view, deps = _deps(request)
    response = web.HTTPFound("/", headers=HEADERS)
    state_, nonce = view.sessions.start(response, request.query.get("next", "/web"))
    response.headers["Location"] = authorize_url(deps.settings, state=state_, nonce=nonce)
    raise response


async def _callback(request: web.Request) -> web.Response:
    view, deps = _deps(request)
    if "error" in request.query:
        body = f"<h1>Not signed in</h1><p>Slack said: {escape(request.query['error'])}.</p>"
        return page("Not signed in", body, viewer=None, status=400)
    try:
        nonce, next_path = view.sessions.pending(request, request.query.get("state", ""))
        viewer = await exchange(deps.settings, code=request.query.get("code", ""), nonce=nonce)
    except SignInRefused as exc:
        log.info("a sign-in was refused: %s", exc)
        again = '<p><a href="/login">Sign in again</a></p>'
        body = f"<h1>Not signed in</h1><p>{escape(str(exc))}.</p>{again}"
        return page("Not signed in", body, viewer=None, status=400)
    response = web.HTTPFound(next_path, headers=HEADERS)
    view.sessions.sign_in(response, viewer)
    response.del_cookie("orchestrate_login", path="/")
    raise response


async def _logout(request: web.Request) -> web.Response:
    view = request.app[WEB]
    response = web.HTTPFound("/web", headers=HEADERS)
    view.sessions.sign_out(response)
    raise response


async def _visible(request: web.Request) -> tuple[WebDeps, Viewer, RunPage] | web.Response:
    """The run's page when the signed-in viewer may see it; else the answer to give."""
    view, deps = _deps(request)
    viewer = view.sessions.viewer(request)
    if viewer is None:
        raise _to_login(request)
    run_id = request.match_info["run_id"]
    run = await deps.pages.page(run_id)
    if run is None or not await access.may_see(deps.settings, deps.client, viewer, run.main.run):
        return _not_found(viewer)
    return deps, viewer, run


async def _run_page(request: web.Request) -> web.Response:
    seen = await _visible(request)
    if isinstance(seen, web.Response):
        return seen
    deps, viewer, run_page = seen
    body, title, _ = await _panes(request.app[WEB], deps, run_page)
    live = f"{RUN_PAGE_PATH}{quote(run_page.main.run.id)}/live"
    return page(title, body, viewer=viewer, live=live)


async def _panes(view: WebView, deps: WebDeps, run_page: RunPage) -> tuple[str, str, bool]:
    """The panes' HTML, the page's title, and whether anything is still working."""
    run = run_page.main.run
    link = await _slack_link(view, deps, run.thread_channel, run.thread_ts)
    body = panes_html(
        run_page, slack_link=link, store_questions=deps.settings.ledger_store_questions
    )
    panes = fold(run_page.main)
    title = panes.strategy.title if panes.strategy else "A run"
    working = any(r.run.status == "running" for r in (run_page.main, *run_page.followups))
    key, _ = state(panes, run_page.main.run.status)
    return body, title, working or key in ("planning", "illustrating", "reviewing")


async def _slack_link(
    view: WebView, deps: WebDeps, channel: str | None, ts: str | None
) -> str | None:
    if channel is None or ts is None:
        return None
    if (channel, ts) in view.links:
        return view.links[channel, ts]
    try:
        answer = await deps.client.chat_getPermalink(channel=channel, message_ts=ts)
    except Exception as exc:  # a missing link must never cost the page
        log.info("no permalink for %s/%s: %s", channel, ts, type(exc).__name__)
        return None
    link = str(answer.get("permalink") or "")
    if not link.startswith(("https://", "http://")):
        return None
    if len(view.links) >= MAX_LINKS:
        view.links.clear()  # a bounded memo, not a store: Slack answers again
    view.links[channel, ts] = link
    return link


async def _live(request: web.Request) -> web.StreamResponse:
    seen = await _visible(request)
    if isinstance(seen, web.Response):
        return seen
    deps, _, first = seen
    view = request.app[WEB]
    run_id = first.main.run.id
    response = web.StreamResponse(
        headers={**HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # the page was closed or left
        await _follow(deps, view, run_id, response)
    return response


async def _follow(deps: WebDeps, view: WebView, run_id: str, response: web.StreamResponse) -> None:
    """Send the panes whenever the run (or a follow-up) changes, until shutdown or the limit."""
    started = last_sent = time.monotonic()
    version: tuple[object, ...] | None = None
    working = True
    while time.monotonic() - started < LIVE_MAX_S and not view.closing.is_set():
        now_version = await deps.pages.version(run_id)
        if now_version != version:
            version = now_version
            run_page = await deps.pages.page(run_id)
            if run_page is None:  # the run was erased meanwhile
                break
            body, _, working = await _panes(view, deps, run_page)
            await response.write(_event("panes", body))
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent > KEEPALIVE_S:
            await response.write(b": keep-alive\n\n")
            last_sent = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(view.closing.wait(), LIVE_POLL_S if working else IDLE_POLL_S)


def _event(name: str, data: str) -> bytes:
    # SSE ends a line at \r too: the HTML is sent with \n alone, one data: line each.
    lines = "".join(f"data: {line}\n" for line in data.replace("\r", "").split("\n"))
    return f"event: {name}\n{lines}\n".encode()


# The dashboard ----------------------------------------------------------------------------


async def _is_admin(view: WebView, deps: WebDeps, viewer: Viewer) -> bool:
    team = await view.team(deps)
    return team is not None and await access.admin(deps.settings, deps.client, viewer, team)


async def _admin_board(request: web.Request) -> tuple[Viewer, dashboard.Dashboard] | web.Response:
    view, deps = _deps(request)
    viewer = view.sessions.viewer(request)
    if viewer is None:
        raise _to_login(request)
    if not await _is_admin(view, deps, viewer):
        body = "<h1>Admins only</h1><p>The spend dashboard is for the workspace's admins.</p>"
        return page("Admins only", body, viewer=viewer, status=403)
    try:
        days = int(request.query.get("days", "30"))
    except ValueError:
        days = 30
    days = min(max(days, 1), dashboard.MAX_DAYS)
    return viewer, await dashboard.build(deps, viewer.team_id, days=days)


async def _admin(request: web.Request) -> web.Response:
    board = await _admin_board(request)
    if isinstance(board, web.Response):
        return board
    viewer, data = board
    current = ' aria-current="page"'
    choices = " · ".join(
        f'<a href="/admin?days={d}"{current if d == data.days else ""}>{d} days</a>'
        for d in (7, 30, 90)
    )
    body = (
        f"<h1>Spend, the last {data.days} days</h1><p>{choices} · "
        f'<a href="/admin.csv?days={data.days}" download>Download CSV</a></p>'
        f"{dashboard.charts_html(data)}"
    )
    return page("Spend dashboard", f'<div class="dashboard">{body}</div>', viewer=viewer)


async def _admin_csv(request: web.Request) -> web.Response:
    board = await _admin_board(request)
    if isinstance(board, web.Response):
        return board
    _, data = board
    name = f"orchestrate-spend-{data.days}d.csv"
    return web.Response(
        text=dashboard.to_csv(data),
        content_type="text/csv",
        headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


# Static -----------------------------------------------------------------------------------

_TYPES = {"app.css": "text/css", "app.js": "text/javascript", "code.css": "text/css"}


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _TYPES:
        raise web.HTTPNotFound(headers=HEADERS)
    text = code_css() if name == "code.css" else _asset(name)
    headers = {**HEADERS, "Cache-Control": "public, max-age=3600"}
    return web.Response(text=text, content_type=_TYPES[name], headers=headers)


def _asset(name: str) -> str:
    return resources.files("bot.web").joinpath("static", name).read_text(encoding="utf-8")
