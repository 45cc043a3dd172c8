"""What reaches Bolt in HTTP mode: signed, fresh, well-formed requests; the rest get a 4xx.

Bolt checks signatures as well, but it answers a non-numeric `X-Slack-Request-Timestamp`
with a 500, answers a signed body it cannot parse with a 500, and logs the whole body of
every badly signed request at INFO (a flood of large unsigned posts fills the disk, and a
refused genuine request leaks its `response_url`). So every request is checked here first,
with slack_sdk's `SignatureVerifier`, and a refusal is logged as one short line: the
reason, the body's size and the source address, never a byte of the body.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from json import JSONDecodeError
from typing import Any

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)
# Slack refuses requests whose timestamp is more than five minutes from now; so do we.
MAX_CLOCK_SKEW_S = 300
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a request was turned away, and the HTTP status it gets."""

    status: int
    reason: str


async def admit(request: web.Request, verifier: SignatureVerifier) -> AsyncBoltRequest | Refused:
    """The request as Bolt takes it, or why it is refused (already logged, in one line)."""
    outcome = await _check(request, verifier)
    if isinstance(outcome, Refused):
        log.warning(
            "refused a request to %s: %s (%s bytes from %s)",
            request.path,
            outcome.reason,
            request.content_length if request.content_length is not None else "?",
            request.remote or "?",
        )
    return outcome


async def _check(request: web.Request, verifier: SignatureVerifier) -> AsyncBoltRequest | Refused:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return Refused(413, "body too large")
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if not _TIMESTAMP.fullmatch(timestamp):
        return Refused(401, "missing or non-numeric timestamp")
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_S:
        return Refused(401, "stale timestamp")
    try:
        text = raw.decode("utf-8")  # Slack sends UTF-8; anything else is not from Slack
    except UnicodeDecodeError:
        return Refused(400, "body is not UTF-8")
    if not verifier.is_valid(text, timestamp, request.headers.get("X-Slack-Signature", "")):
        return Refused(401, "bad signature")
    return _parsed(text, request)


def _parsed(text: str, request: web.Request) -> AsyncBoltRequest | Refused:
    """Signed by Slack but shaped wrongly (a bug or a replay of something else): 400."""
    try:
        body: Any = parse_body(text, request.content_type)
    except JSONDecodeError:
        return Refused(400, "malformed body")
    if not isinstance(body, dict) or not body:
        return Refused(400, "malformed body")
    return AsyncBoltRequest(
        body=text,
        query=request.query_string,
        headers=request.headers,  # type: ignore[arg-type]
    )
