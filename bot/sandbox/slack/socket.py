"""The Slack sandbox's Socket Mode server: WebSocket connections, envelopes and acks.

`apps.connections.open` issues a single-use ticket URL; a client that connects with it gets
Slack's `hello` (with `num_connections` and `connection_info.app_id`). `deliver` sends one
envelope (`slash_commands`, `events_api` or `interactive`) over one open connection, spreading
envelopes round-robin as Slack load-balances across an app's connections, and waits for the
ack whose `envelope_id` matches, recording how long it took. A missing ack after the timeout
is reported as timed out; a late ack is still recorded in `late_acks`. `disconnect` sends
Slack's `disconnect` message so clients reconnect on a fresh URL. Pings from the client are
answered by aiohttp's automatic pong, as Slack answers them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

ACK_TIMEOUT_S = 3.0
AckCallback = Callable[[dict[str, Any] | None], None]


@dataclass(frozen=True, slots=True)
class Ack:
    """How the app answered one envelope: its payload, and how fast (None if never);
    `acked_at` is when the ack arrived, by the wall clock (`time.time()`, as a database
    stamps its rows)."""

    envelope_id: str
    payload: dict[str, Any] | None
    latency_s: float | None
    timed_out: bool
    acked_at: float | None = None


@dataclass(slots=True)
class _Pending:
    sent_at: float
    on_ack: AckCallback | None = None
    timed_out: bool = False
    future: asyncio.Future[tuple[float, dict[str, Any] | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SocketHub:
    """Every Socket Mode connection of the one app, and the envelopes sent over them."""

    def __init__(self, *, app_id: str, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self.app_id = app_id
        self.ack_timeout_s = ack_timeout_s
        self.ws_base = ""
        self.connections: list[web.WebSocketResponse] = []
        self.acks: list[Ack] = []
        self.late_acks: list[Ack] = []
        self.envelopes: list[dict[str, Any]] = []
        self.connections_opened = 0
        self._tickets: set[str] = set()
        self._pending: dict[str, _Pending] = {}
        self._turn = itertools.count()
        self._changed = asyncio.Event()

    def issue_url(self) -> str:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"{self.ws_base}/socket-mode/link/?ticket={ticket}&app_id={self.app_id}"

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            # Tickets are single-use, like Slack's: a stale URL is refused at the handshake.
            raise web.HTTPUnauthorized(text="invalid or used ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._add(ws)
        try:
            await ws.send_json(self._hello())
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_text(message.data)
        finally:
            self._remove(ws)
        return ws

    async def wait_connected(self, timeout: float, *, count: int = 1) -> None:  # noqa: ASYNC109
        await self.wait_until(lambda: len(self._open()) >= count, timeout)

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        """Wait until `condition()` holds, re-checking whenever a connection opens or closes."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        on_ack: AckCallback | None = None,
    ) -> Ack:
        """Send one envelope and wait (up to the ack timeout) for the app's ack.

        `on_ack` runs with the ack's payload the moment a timely ack arrives, before anything
        else the app does next can reach the sandbox: Slack shows an ack's text that early.
        """
        ws = self._next_connection()
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if retry_attempt is not None:
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason or "")
        pending = _Pending(time.monotonic(), on_ack)
        self._pending[envelope_id] = pending
        self.envelopes.append(envelope)
        await ws.send_json(envelope)
        ack = await self._await_ack(envelope_id, pending)
        self.acks.append(ack)
        return ack

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every connected client to reconnect, as Slack does before recycling a host."""
        message = {
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": "applink-sandbox"},
        }
        for ws in self._open():
            await ws.send_json(message)

    async def close(self) -> None:
        for ws in list(self.connections):
            await ws.close(code=1001, message=b"sandbox stopping")

    async def _await_ack(self, envelope_id: str, pending: _Pending) -> Ack:
        try:
            async with asyncio.timeout(self.ack_timeout_s):
                at, payload = await asyncio.shield(pending.future)
        except TimeoutError:
            pending.timed_out = True
            return Ack(envelope_id, None, None, timed_out=True)
        del self._pending[envelope_id]
        latency_s = at - pending.sent_at
        return Ack(envelope_id, payload, latency_s, timed_out=False, acked_at=time.time())

    def _on_text(self, raw: str) -> None:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return
        envelope_id = data.get("envelope_id") if isinstance(data, dict) else None
        pending = self._pending.get(envelope_id or "")
        if pending is None:
            return
        now, payload = time.monotonic(), data.get("payload")
        if pending.timed_out:
            del self._pending[envelope_id or ""]
            self.late_acks.append(
                Ack(envelope_id or "", payload, now - pending.sent_at, timed_out=True)
            )
        elif not pending.future.done():
            if pending.on_ack is not None:
                pending.on_ack(payload)
            pending.future.set_result((now, payload))

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": len(self._open()),
            "debug_info": {
                "host": "applink-sandbox",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }

    def _next_connection(self) -> web.WebSocketResponse:
        open_connections = self._open()
        if not open_connections:
            raise RuntimeError(
                "no Socket Mode connection: start the app (or await "
                "sandbox.wait_connected()) before sending envelopes"
            )
        return open_connections[next(self._turn) % len(open_connections)]

    def _open(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self.connections if not ws.closed]

    def _add(self, ws: web.WebSocketResponse) -> None:
        self.connections.append(ws)
        self.connections_opened += 1
        self._changed.set()

    def _remove(self, ws: web.WebSocketResponse) -> None:
        if ws in self.connections:
            self.connections.remove(ws)
        self._changed.set()
