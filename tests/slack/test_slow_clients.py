"""HTTP mode against clients Slack is not: slow headers, slow bodies, bodies cut off, and
content types Slack never sends. Real sockets on loopback, against the app served as
`orchestrate-bot serve --http` serves it (`bot.slack.server.http_runner`).

Each refusal is one short log line and never an ERROR with a traceback; a slow client is cut
off within its bound, and Slack's own requests are served meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
from pathlib import Path

import pytest
from yarl import URL

from tests.harness import Stack, running_stack

QUESTION = "Design a REST API for a social network"
BOUND_S = 1.0  # the header and body bounds these tests serve with (production: 10 s)
SLOW_CLIENTS = 30


def gate_lines(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.name == "bot.slack.gate"]


def errors(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.levelno >= logging.ERROR or r.exc_info]


async def connect(stack: Stack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert stack.events_url is not None
    url = URL(stack.events_url)
    return await asyncio.open_connection(url.host, url.port)


def head(length: int, content_type: str = "application/json") -> bytes:
    return (
        "POST /slack/events HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
        f"X-Slack-Request-Timestamp: {int(time.time())}\r\nX-Slack-Signature: v0=00\r\n\r\n"
    ).encode()


async def dribble(writer: asyncio.StreamWriter, data: bytes, *, every_s: float) -> None:
    """Send `data` a byte at a time, until it is sent or the server closes."""
    for byte in data:
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every_s)


async def answer_or_close(reader: asyncio.StreamReader, *, within_s: float) -> bytes:
    """What the server sends before it closes the connection (b"" when it just closes)."""
    async with asyncio.timeout(within_s):
        try:
            return await reader.read()
        except ConnectionError:
            return b""


async def slow_body(stack: Stack) -> tuple[bytes, float]:
    reader, writer = await connect(stack)
    started = time.monotonic()
    writer.write(head(1_000) + b'{"type": "event_callback"')
    sending = asyncio.create_task(dribble(writer, b" " * 1_000, every_s=0.2))
    try:
        answer = await answer_or_close(reader, within_s=BOUND_S + 5)
    finally:
        sending.cancel()
        writer.close()
    return answer, time.monotonic() - started


async def test_slow_bodies_are_refused_408_within_the_bound_while_slack_is_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(
        tmp_path, mode="http", header_timeout_s=BOUND_S, body_timeout_s=BOUND_S
    ) as stack:
        caplog.clear()
        slow = [asyncio.create_task(slow_body(stack)) for _ in range(SLOW_CLIENTS)]
        await asyncio.sleep(0.2)
        await stack.command(QUESTION)  # Slack's request, while the slow ones hold on
        outcomes = await asyncio.gather(*slow)
        await stack.settle()
        records = list(caplog.records)
    # Each is answered 408 and closed; where the client is still sending, the close may come
    # as a reset that overtakes the answer in the client's buffer (the kernel's doing).
    # (Whether any 408 survives is the kernel's race: a stalled body's is checked below.)
    assert all(answer.startswith(b"HTTP/1.1 408") or answer == b"" for answer, _ in outcomes)
    assert max(took for _, took in outcomes) < BOUND_S + 2
    refused = (
        f"refused a request to /slack/events: body not received within {BOUND_S:g} s "
        "(1000 bytes from 127.0.0.1)"
    )
    assert gate_lines(records).count(refused) == SLOW_CLIENTS
    assert errors(records) == []
    assert stack.services.runs.admitted == 1


async def test_a_stalled_body_is_answered_408_within_the_bound(tmp_path: Path) -> None:
    # A client that stops sending leaves nothing unread, so no reset can overtake the answer.
    async with running_stack(
        tmp_path, mode="http", header_timeout_s=BOUND_S, body_timeout_s=BOUND_S
    ) as stack:
        reader, writer = await connect(stack)
        started = time.monotonic()
        writer.write(head(1_000) + b'{"type": "event_callback"')
        try:
            answer = await answer_or_close(reader, within_s=BOUND_S + 5)
        finally:
            writer.close()
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408")
    assert took < BOUND_S + 2


async def test_slow_headers_are_cut_off_within_the_bound(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, mode="http", header_timeout_s=BOUND_S, body_timeout_s=BOUND_S
    ) as stack:
        reader, writer = await connect(stack)
        started = time.monotonic()
        sending = asyncio.create_task(dribble(writer, head(10) * 10, every_s=0.1))
        try:
            answer = await answer_or_close(reader, within_s=BOUND_S + 5)
        finally:
            sending.cancel()
            writer.close()
        took = time.monotonic() - started
    assert answer == b"" and took < BOUND_S + 2


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_client_that_goes_away_mid_body_is_one_line_and_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        caplog.clear()
        for _ in range(5):
            _, writer = await connect(stack)
            writer.write(head(1_000) + b'{"type": ')
            await writer.drain()
            await asyncio.sleep(0.2)  # the handler is reading the body
            if how == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.3)
        records = list(caplog.records)
    went_away = (
        "refused a request to /slack/events: the client went away mid-body "
        "(1000 bytes from 127.0.0.1)"
    )
    assert gate_lines(records) == [went_away] * 5
    assert errors(records) == []


def mention_envelope(stack: Stack) -> str:
    _, event = stack.slack.typed_mention(f"@orchestrate {QUESTION}")
    envelope = {
        "type": "event_callback",
        "team_id": "T0SANDBOX",
        "api_app_id": "A0APP",
        "event": event,
        "event_id": "Ev0FORGED",
        "event_time": int(time.time()),
    }
    return json.dumps(envelope)


@pytest.mark.parametrize(
    ("content_type", "shape"),
    [
        ("text/plain", "json"),  # an event as text
        ("application/x-www-form-urlencoded", "json"),  # an event's JSON as a form
        ("application/x-www-form-urlencoded", "payload"),  # an event as a form's payload
        ("multipart/form-data", "payload"),
    ],
)
async def test_an_event_in_a_content_type_slack_never_sends_is_refused_415(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content_type: str, shape: str
) -> None:
    from bot.sandbox.slack.payloads import form_body, post_signed

    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        envelope = mention_envelope(stack)
        body = envelope if shape == "json" else form_body({"payload": envelope})
        headers = stack.slack.signed_request(body, content_type=content_type)
        caplog.clear()
        status, _, _, _ = await post_signed(stack.events_url, body, headers)
        await asyncio.sleep(0.3)
        await stack.services.runs.wait_idle()
        lines = gate_lines(list(caplog.records))
    assert status == 415
    assert len(lines) == 1 and "415" not in lines[0]
    assert stack.claude.requests == [] and stack.slack.ephemerals() == []


async def test_an_interaction_posted_as_json_is_refused_415(tmp_path: Path) -> None:
    from bot.sandbox.slack.payloads import post_signed

    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        await stack.command(QUESTION)
        await stack.settle()
        _, replies = stack.thread()
        review = next(r for r in replies if "orchestrate_feedback" in json.dumps(r.blocks))
        click = stack.slack.click_payload(
            "C0GENERAL", review.ts, "orchestrate_feedback", choice="positive"
        )
        body = json.dumps(click)
        headers = stack.slack.signed_request(body, content_type="application/json")
        status, _, _, _ = await post_signed(stack.events_url, body, headers)
        await asyncio.sleep(0.3)
    assert status == 415
    assert stack.slack.ephemerals() == []  # no vote was taken, nobody thanked
