"""The Slack sandbox's Web API plumbing: one aiohttp handler for every `/api/{method}`.

It does what Slack does around every method: reads arguments from the query string, a
form-encoded body or a JSON body; finds the token in `Authorization: Bearer` or a `token`
argument (never in a JSON body, which Slack refuses); checks the token type and answers
`not_authed`, `invalid_auth` or `not_allowed_token_type`; applies injected failures
(`fail_next`), the per-channel posting rate and the tier limits of `chat.update` and the
stream methods; answers
`unknown_method` for anything it does not know; records every call; and shapes answers as
`{"ok": …}` JSON with `warning` and `response_metadata.warnings` where Slack sends them.
The methods themselves live in `slack_methods.py`.
"""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

TokenKind = Literal["bot", "app", "user", "client"]  # client: id and secret, no token


class ApiError(Exception):
    """A Slack error answer: `{"ok": false, "error": error, **extra}` with an HTTP status."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra or {}
        self.headers = headers or {}


def invalid_arguments(*messages: str) -> ApiError:
    return ApiError("invalid_arguments", extra={"response_metadata": {"messages": list(messages)}})


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiCall:
    """One Web API call as the sandbox saw it; `at` is `time.monotonic()` on arrival."""

    method: str
    args: dict[str, Any]
    ok: bool
    error: str | None
    status: int
    at: float


@dataclass(slots=True)
class InjectedFailure:
    error: str
    status: int
    retry_after: int | None
    remaining: int
    passing: int = 0  # calls that still succeed before the first failure


@dataclass(slots=True)
class Outage:
    """Until `until` (monotonic), every Web API call loses its connection without an
    answer; the first `landing` of them act before the drop (the post is made, the app
    never hears so), the rest are dropped before Slack acts."""

    until: float
    landing: int


# The error recorded for a call whose connection the sandbox dropped.
CONNECTION_DROPPED = "connection_dropped"


@dataclass(slots=True)
class CallContext:
    """What a method handler gets: its arguments and the caller's identity."""

    method: str
    args: dict[str, Any]
    token_kind: TokenKind
    warnings: list[str] = field(default_factory=list)
    token: str | None = None  # a user token's person is who it was issued to (oidc)

    def text(self, name: str) -> str | None:
        value = self.args.get(name)
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise invalid_arguments(f"[ERROR] missing required field: {name}")
        return value

    def flag(self, name: str) -> bool | None:
        value = self.args.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        return str(value).lower() in {"1", "true", "yes"}

    def structured(self, name: str, *, format_error: str) -> Any:
        """A JSON argument, sent as JSON or as a JSON string in a form (Slack accepts both)."""
        value = self.args.get(name)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ApiError(format_error) from None


Handler = Callable[[CallContext], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Method:
    handler: Handler
    token: TokenKind = "bot"


class TokenBucket:
    """Slack's ~1 message/second/channel with a small burst, as a per-key token bucket."""

    def __init__(self, rate: float, burst: int = 3) -> None:
        self.rate = rate
        self.burst = burst
        self._state: dict[str, tuple[float, float]] = {}

    def retry_after(self, key: str) -> int | None:
        """None when a token was taken; otherwise whole seconds until one is available."""
        now = time.monotonic()
        tokens, last = self._state.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._state[key] = (tokens - 1.0, now)
            return None
        self._state[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))


class WindowLimit:
    """Slack's Tier 3 for one method, read strictly: at most `limit` calls in any
    `window_s` seconds (a sliding window; a burst of up to `limit` at once is allowed)."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._accepted: deque[float] = deque()

    def retry_after(self) -> int | None:
        """None when the call is accepted (and counted); otherwise whole seconds until the
        oldest call in the window leaves it. A refused call is not counted."""
        now = time.monotonic()
        while self._accepted and self._accepted[0] <= now - self.window_s:
            self._accepted.popleft()
        if len(self._accepted) < self.limit:
            self._accepted.append(now)
            return None
        return max(1, math.ceil(self._accepted[0] + self.window_s - now))


class WebApi:
    """Routes `/api/{method}` to handlers, with Slack's auth, errors and bookkeeping."""

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str,
        scopes: frozenset[str],
        post_rate_per_channel: float | None,
        update_limit: WindowLimit | None = None,
        method_limits: dict[str, WindowLimit] | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.scopes = scopes
        self.user_tokens: set[str] = set()  # issued by Sign in with Slack (bot.sandbox.slack.oidc)
        self.methods: dict[str, Method] = {}
        self.calls: list[ApiCall] = []
        self.unknown_calls: list[ApiCall] = []
        self._failures: dict[str, list[InjectedFailure]] = {}
        self._post_bucket = TokenBucket(post_rate_per_channel) if post_rate_per_channel else None
        # Per method, as Slack counts its tiers: "per API method per app per workspace".
        self._limits = dict(method_limits or {})
        if update_limit is not None:
            self._limits["chat.update"] = update_limit
        self._outage: Outage | None = None

    def drop_connections(self, seconds: float, *, landing: int = 0) -> None:
        """For `seconds` from now, close every Web API call's connection unanswered."""
        self._outage = Outage(time.monotonic() + seconds, landing)

    def _drop(self) -> Literal["before", "after"] | None:
        """Whether this call's connection is dropped, and before or after Slack acts."""
        outage = self._outage
        if outage is None or time.monotonic() >= outage.until:
            return None
        if outage.landing > 0:
            outage.landing -= 1
            return "after"
        return "before"

    def fail_next(
        self,
        method: str,
        *,
        error: str | None,
        status: int,
        retry_after: int | None,
        times: int,
        after: int = 0,
    ) -> None:
        default = "ratelimited" if status == 429 else "internal_error"
        failure = InjectedFailure(error or default, status, retry_after, times, passing=after)
        self._failures.setdefault(method, []).append(failure)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        at = time.monotonic()
        args: dict[str, Any] = dict(request.query)
        token: str | None = None
        warnings: list[str] = []
        drop = self._drop()
        try:
            args, token, warnings = await _read_request(request)
            if drop == "before":
                return self._dropped(request, method, args, at)
            body = self._dispatch(method, args, token, warnings)
            status, headers = 200, {}
        except ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.extra}
            status, headers = exc.status, exc.headers
        if drop == "after":
            return self._dropped(request, method, args, at)
        if body.get("ok") and warnings:
            body["warning"] = ",".join(warnings)
            body.setdefault("response_metadata", {})["warnings"] = warnings
        call = ApiCall(
            method=method,
            args=_public_args(args),
            ok=bool(body.get("ok")),
            error=body.get("error"),
            status=status,
            at=at,
        )
        self.calls.append(call)
        if body.get("error") == "unknown_method":
            self.unknown_calls.append(call)
        headers = {**headers, **self._scope_headers(token), "x-slack-req-id": uuid.uuid4().hex}
        return web.json_response(body, status=status, headers=headers)

    def _dropped(
        self, request: web.Request, method: str, args: dict[str, Any], at: float
    ) -> web.Response:
        self.calls.append(
            ApiCall(
                method=method,
                args=_public_args(args),
                ok=False,
                error=CONNECTION_DROPPED,
                status=0,
                at=at,
            )
        )
        if request.transport is not None:
            request.transport.close()  # the client sees the server disconnect, no answer
        return web.Response(status=503)  # never reaches the client

    def _dispatch(
        self, method: str, args: dict[str, Any], token: str | None, warnings: list[str]
    ) -> dict[str, Any]:
        spec = self.methods.get(method)
        if spec is None:
            raise ApiError("unknown_method", extra={"req_method": method})
        kind = self._authenticate(token, spec)
        self._injected_failure(method)
        if method == "chat.postMessage":
            self._rate_limit(args)
        limit = self._limits.get(method)
        if limit is not None:
            wait = limit.retry_after()
            if wait is not None:
                raise ApiError("ratelimited", status=429, headers={"Retry-After": str(wait)})
        ctx = CallContext(method, args, kind, warnings, token=token)
        return {"ok": True, **spec.handler(ctx)}

    def _authenticate(self, token: str | None, spec: Method) -> TokenKind:
        if spec.token == "client":
            return "client"  # the method checks the client id and secret itself
        if not token:
            raise ApiError("not_authed")
        kind: TokenKind
        if token == self.bot_token:
            kind = "bot"
        elif token == self.app_token:
            kind = "app"
        elif token in self.user_tokens:
            kind = "user"
        else:
            raise ApiError("invalid_auth")
        if kind != spec.token:
            raise ApiError("not_allowed_token_type")
        return kind

    def _injected_failure(self, method: str) -> None:
        queue = self._failures.get(method)
        if not queue:
            return
        failure = queue[0]
        if failure.passing > 0:
            failure.passing -= 1
            return
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        raise ApiError(failure.error, status=failure.status, headers=headers)

    def _rate_limit(self, args: dict[str, Any]) -> None:
        if self._post_bucket is None:
            return
        wait = self._post_bucket.retry_after(str(args.get("channel", "")))
        if wait is not None:
            raise ApiError("ratelimited", status=429, headers={"Retry-After": str(wait)})

    def _scope_headers(self, token: str | None) -> dict[str, str]:
        if token == self.bot_token:
            return {"x-oauth-scopes": ",".join(sorted(self.scopes))}
        if token == self.app_token:
            return {"x-oauth-scopes": "connections:write"}
        return {}

    def need_scope(self, scope: str) -> None:
        """Refuse with Slack's missing_scope answer unless the bot token has `scope`."""
        if scope not in self.scopes:
            raise ApiError(
                "missing_scope", extra={"needed": scope, "provided": ",".join(sorted(self.scopes))}
            )


async def _read_request(request: web.Request) -> tuple[dict[str, Any], str | None, list[str]]:
    """Arguments, token and charset warnings, read the way Slack reads them."""
    args: dict[str, Any] = dict(request.query)
    warnings: list[str] = []
    raw = await request.read()
    content_type = request.headers.get("Content-Type", "").lower()
    body_token: str | None = None
    if raw and content_type.startswith("application/json"):
        if "charset" not in content_type:
            warnings.append("missing_charset")
        try:
            parsed = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError("invalid_json") from None
        if isinstance(parsed, dict):
            # Slack ignores a token inside a JSON body: JSON callers must use the header.
            parsed.pop("token", None)
            args.update(parsed)
    elif raw:
        if "charset" in content_type:
            warnings.append("superfluous_charset")
        args.update(dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True)))
        body_token = args.get("token")
    bearer = request.headers.get("Authorization", "")
    token = bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else None
    if bearer.startswith("Basic "):  # client credentials (openid.connect.token)
        try:
            pair = base64.b64decode(bearer.removeprefix("Basic ").strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise ApiError("invalid_auth") from None
        client_id, _, client_secret = pair.partition(":")
        args.setdefault("client_id", client_id)
        args.setdefault("client_secret", client_secret)
    return args, token or body_token or request.query.get("token"), warnings


def _public_args(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k != "token"}
