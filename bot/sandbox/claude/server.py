"""A local stand-in for the Claude Messages API, for the demo and the tests.

`ClaudeSandbox` serves `POST /v1/messages` (JSON and SSE), `/v1/messages/count_tokens` and
the model catalogue (`GET /v1/models`, `/v1/models/{id}`) on loopback, so the real
`anthropic` SDK can talk to it through `base_url`. It checks the key and the body like the
API, answers each pipeline role deterministically (`claude_content`), prices usage with
thinking and prompt caching (`claude_usage`), and paces answers with a deterministic
`LatencyModel`. Tests inject faults with `add_rule`
(or `POST /_sandbox/rules` from another process) and inspect every call in `requests`.
The wire format lives in `claude_wire`, latency, rules and records in `claude_rules`;
this module owns the server and the order in which a call is checked, delayed and answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.sandbox.claude import catalogue, content
from bot.sandbox.claude.models import is_known
from bot.sandbox.claude.rules import (
    FAULTS,
    Fault,
    LatencyModel,
    ModelLatency,
    RecordedRequest,
    Rule,
    rule_arguments,
)
from bot.sandbox.claude.usage import PromptCache, input_tokens, segments
from bot.sandbox.claude.wire import (
    ApiError,
    Reply,
    SseEvent,
    compose,
    error_body,
    invalid,
    message_json,
    sse_events,
    stream_error_events,
    validate,
)

__all__ = [
    "ClaudeSandbox",
    "Fault",
    "LatencyModel",
    "ModelLatency",
    "RecordedRequest",
    "Rule",
]

_CONTENT_FAULTS = frozenset({"invalid_output", "refusal", "max_tokens", "context_window"})
_STATUS_FAULTS = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your rate limit.",
    ),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "stream_error": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
}
_DEFAULT_RATE_LIMIT_RETRY_S = 1.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class _Call:
    """What one messages request resolved to once validated and matched to a rule."""

    body: Mapping[str, Any]
    model: str
    role: content.Role
    seed: str
    rule: Rule | None = None
    fault: str | None = None


class ClaudeSandbox:
    """The Messages API on 127.0.0.1: start it, point `AsyncAnthropic(base_url=...)` at it."""

    def __init__(
        self,
        *,
        api_key: str = "sk-ant-sandbox",
        latency: LatencyModel | None = None,
        cache_minimums: Mapping[str, int] | None = None,
    ) -> None:
        self.api_key = api_key
        self.latency = latency or LatencyModel()
        self.requests: list[RecordedRequest] = []
        # `GET /v1/models…` lookups, kept apart from the calls that cost tokens.
        self.model_lookups: list[str] = []
        self.rules: list[Rule] = []
        # Per model id; unset models get the stricter default (`models.cache_minimum`).
        self.cache = PromptCache(cache_minimums)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._closing = asyncio.Event()
        self._next_rule_id = 1

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("ClaudeSandbox is not running: await start() first")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._closing = asyncio.Event()  # a restarted sandbox paces again
        app = web.Application(middlewares=[self._api_errors], client_max_size=64 * 1024**2)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model_id}", self._model)
        app.router.add_post("/_sandbox/rules", self._post_rule)
        app.router.add_delete("/_sandbox/rules", self._delete_rules)
        app.router.add_get("/_sandbox/requests", self._get_requests)
        # Cancelling a handler when its client leaves is what ends a stall or a stream.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self._base_url = f"http://{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        self._closing.set()  # wakes paced and stalled handlers so shutdown does not wait
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner, self._base_url = None, None

    async def __aenter__(self) -> ClaudeSandbox:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def add_rule(
        self,
        *,
        role: str | None = None,
        model: str | None = None,
        contains: str | None = None,
        fault: Fault | None = None,
        delay_s: float | None = None,
        times: int | None = None,
        retry_after_s: float | None = None,
        text: str | None = None,
    ) -> Rule:
        """Add a rule; the first active matching rule applies to a call and uses one `times`.
        `text` replaces the generated answer (e.g. a hostile or very long example)."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; use one of {sorted(FAULTS)}")
        rule = Rule(
            id=self._next_rule_id,
            role=role,
            model=model,
            contains=contains,
            fault=fault,
            delay_s=delay_s,
            remaining=times,
            retry_after_s=retry_after_s,
            text=text,
        )
        self._next_rule_id += 1
        self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        self.rules.clear()

    def messages(self) -> list[RecordedRequest]:
        """The recorded `POST /v1/messages` calls, leaving out count_tokens."""
        return [r for r in self.requests if r.endpoint == "messages"]

    # -- HTTP plumbing -------------------------------------------------------------------

    @web.middleware
    async def _api_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Routing errors get the API's error shape and a request-id, like everything else."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            kind = "not_found_error" if exc.status == 404 else "invalid_request_error"
            return _error_response(ApiError(exc.status, kind, exc.reason), _request_id())

    def _begin(self, endpoint: str) -> RecordedRequest:
        record = RecordedRequest(endpoint, _request_id(), time.monotonic())
        self.requests.append(record)
        return record

    def _authorize(self, request: web.Request) -> None:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        key = request.headers.get("x-api-key") or bearer
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            raise ApiError(401, "authentication_error", "invalid x-api-key")

    async def _body(self, request: web.Request, record: RecordedRequest) -> Any:
        try:
            record.body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise invalid(f"There was an error parsing the body of your request: {exc}") from exc
        return record.body

    async def _pause(self, seconds: float) -> None:
        """Sleep, but return at once when the sandbox is stopping."""
        if seconds > 0 and not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    # -- /v1/messages --------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        record = self._begin("messages")
        try:
            self._authorize(request)
            raw = await self._body(request, record)
            record.streamed = isinstance(raw, dict) and raw.get("stream") is True
            call = self._resolve(raw, record)
            return await self._answer(request, call, record)
        except ApiError as error:
            record.status, record.error_type = error.status, error.kind
            return _error_response(error, record.request_id)
        except (asyncio.CancelledError, ConnectionResetError):
            record.error_type = record.error_type or "client_disconnected"
            raise
        finally:
            record.finished = time.monotonic()

    def _resolve(self, raw: object, record: RecordedRequest) -> _Call:
        body = validate(raw)
        model = str(body["model"])
        role = content.role_of(body)
        record.role, record.model = role, model
        parts = segments(body)
        seed = hashlib.sha256("".join(p.fingerprint for p in parts).encode()).hexdigest()
        call = _Call(body, model, role, seed)
        text = content.last_user_text(body)
        call.rule = next(
            (r for r in self.rules if r.matches(role=role, model=model, text=text)), None
        )
        if call.rule is not None:
            call.rule.consume()
            call.fault = record.fault = call.rule.fault
        return call

    async def _answer(
        self, request: web.Request, call: _Call, record: RecordedRequest
    ) -> web.StreamResponse:
        if call.fault == "stall":
            return await self._stall()
        if call.fault == "disconnect" and not record.streamed:
            return self._hang_up(request, record)
        if call.fault in _STATUS_FAULTS and not (call.fault == "stream_error" and record.streamed):
            raise self._status_fault(call)
        ttft = self._ttft(call)
        started = time.monotonic()
        cache = self.cache.account(
            call.model, segments(call.body), now=started, first_token_at=started + ttft
        )
        fault = call.fault if call.fault in _CONTENT_FAULTS else None
        text = call.rule.text if call.rule else None
        reply = compose(
            call.body, role=call.role, fault=fault, seed=call.seed, cache=cache, text=text
        )
        record.usage = reply.usage
        per_token = self._per_token(call, ttft, reply.output_tokens)
        if record.streamed:
            return await self._stream(request, call, reply, record, pace=(ttft, per_token))
        await self._pause(ttft + per_token * reply.output_tokens)
        record.status = 200
        record.first_token = time.monotonic()
        body = message_json(reply, message_id=_message_id())
        return web.json_response(body, headers={"request-id": record.request_id})

    def _ttft(self, call: _Call) -> float:
        ttft = self.latency.ttft(call.model)
        delay = call.rule.delay_s if call.rule else None
        return ttft if delay is None else min(ttft, delay)

    def _per_token(self, call: _Call, ttft: float, output_tokens: int) -> float:
        """Seconds per output token; a rule's `delay_s` fixes the total instead."""
        delay = call.rule.delay_s if call.rule else None
        if delay is None:
            return self.latency.per_token(call.model)
        return max(delay - ttft, 0.0) / max(output_tokens, 1)

    def _status_fault(self, call: _Call) -> ApiError:
        status, kind, message = _STATUS_FAULTS[str(call.fault)]
        retry = call.rule.retry_after_s if call.rule else None
        if retry is None and call.fault == "rate_limit":
            retry = _DEFAULT_RATE_LIMIT_RETRY_S
        headers = {} if retry is None else _retry_headers(retry)
        return ApiError(status, kind, f"{message} (sandbox rule)", headers=headers)

    async def _stall(self) -> web.StreamResponse:
        """Never send headers: wait until the client gives up (cancels us) or we stop."""
        await self._closing.wait()
        return web.Response(status=503)

    async def _stream(
        self,
        request: web.Request,
        call: _Call,
        reply: Reply,
        record: RecordedRequest,
        *,
        pace: tuple[float, float],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=_sse_headers(record.request_id))
        await response.prepare(request)
        record.status = 200
        message_id = _message_id()
        failing = call.fault == "stream_error"
        events = (stream_error_events if failing else sse_events)(reply, message_id=message_id)
        if call.fault == "disconnect":
            half = sum(e.tokens for e in events) / 2
            await self._send_paced(response, events, record, pace=pace, cut_at=half)
            return self._hang_up(request, record)
        if call.fault == "disconnect_after_delta":  # the usage came, `message_stop` never does
            await self._send_paced(response, events[:-1], record, pace=pace)
            return self._hang_up(request, record)
        await self._send_paced(response, events, record, pace=pace)
        record.error_type = "overloaded_error" if failing else None
        await response.write_eof()
        return response

    def _hang_up(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        """Drop the connection without ending the response, like a proxy or network failure."""
        record.error_type = "connection_cut"
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=502)  # never reaches the client: the socket is gone

    async def _send_paced(
        self,
        response: web.StreamResponse,
        events: list[SseEvent],
        record: RecordedRequest,
        *,
        pace: tuple[float, float],
        cut_at: float | None = None,
    ) -> None:
        """Send each event when the tokens before it would have been generated; with
        `cut_at`, stop once that many output tokens have been generated."""
        ttft, per_token = pace
        await self._pause(ttft)
        origin, spent = time.monotonic(), 0.0
        record.first_token = origin
        for event in events:
            if cut_at is not None and spent + event.tokens > cut_at:
                await self._pause(origin + cut_at * per_token - time.monotonic())
                record.streamed_tokens = cut_at
                return
            try:
                await self._pause(origin + (spent + event.tokens) * per_token - time.monotonic())
            except asyncio.CancelledError:
                # The client left while this event was being generated: count what was.
                done = (time.monotonic() - origin) / per_token if per_token > 0 else spent
                record.streamed_tokens = min(spent + event.tokens, max(spent, done))
                raise
            spent += event.tokens
            await response.write(event.encode())
            record.streamed_tokens = spent

    # -- /v1/messages/count_tokens -------------------------------------------------------

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        record = self._begin("count_tokens")
        try:
            self._authorize(request)
            body = await self._body(request, record)
            _validate_count(body)
            record.model, record.status = str(body["model"]), 200
            counted = {"input_tokens": input_tokens(body)}
            return web.json_response(counted, headers={"request-id": record.request_id})
        except ApiError as error:
            record.status, record.error_type = error.status, error.kind
            return _error_response(error, record.request_id)
        finally:
            record.finished = time.monotonic()

    # -- /v1/models -----------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return self._catalogue(request, "", lambda: catalogue.model_page(request.query))

    async def _model(self, request: web.Request) -> web.StreamResponse:
        model_id = request.match_info["model_id"]
        return self._catalogue(request, model_id, lambda: catalogue.model_info(model_id))

    def _catalogue(
        self, request: web.Request, looked_up: str, answer: Callable[[], dict[str, Any]]
    ) -> web.StreamResponse:
        request_id = _request_id()
        self.model_lookups.append(looked_up)
        try:
            self._authorize(request)
            return web.json_response(answer(), headers={"request-id": request_id})
        except ApiError as error:
            return _error_response(error, request_id)

    # -- control API ---------------------------------------------------------------------

    async def _post_rule(self, request: web.Request) -> web.StreamResponse:
        try:
            payload = await request.json()
            rule = self.add_rule(**rule_arguments(payload))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            return _error_response(invalid(f"bad rule: {exc}"), _request_id())
        return web.json_response({"id": rule.id, **asdict(rule)}, status=201)

    async def _delete_rules(self, request: web.Request) -> web.StreamResponse:
        self.clear_rules()
        return web.Response(status=204)

    async def _get_requests(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([r.summary() for r in self.requests])


def _validate_count(body: object) -> None:
    if not isinstance(body, Mapping):
        raise invalid("Request body must be a JSON object.")
    for name in ("model", "messages"):
        if name not in body:
            raise invalid(f"{name}: Field required")
    if not is_known(str(body["model"])):
        raise ApiError(404, "not_found_error", f"model: {body['model']}")


def _retry_headers(seconds: float) -> dict[str, str]:
    # The API sends whole seconds; `retry-after-ms` lets the SDK honour sub-second test delays.
    return {"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))}


def _sse_headers(request_id: str) -> dict[str, str]:
    return {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "request-id": request_id,
    }


def _error_response(error: ApiError, request_id: str) -> web.Response:
    body = error_body(error.kind, error.message, request_id)
    headers = {"request-id": request_id, **error.headers}
    return web.json_response(body, status=error.status, headers=headers)


def _request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def _message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"
