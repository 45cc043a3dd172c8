"""What reaches Bolt in HTTP mode: signed, fresh, well-formed requests; the rest get a 4xx.

Bolt checks signatures as well, but it answers a non-numeric `X-Slack-Request-Timestamp`
with a 500, answers a signed body it cannot parse with a 500, and logs the whole body of
every badly signed request at INFO (a flood of large unsigned posts fills the disk, and a
refused genuine request leaks its `response_url`). So every request is checked here first,
with slack_sdk's `SignatureVerifier`, and a refusal is logged as one short line: the
reason, the body's size and the source address, never a byte of the body.

Slack sends Events API callbacks as `application/json` and slash commands and interactivity
payloads as `application/x-www-form-urlencoded`, nothing else; Bolt parses any body that
starts with `{` as JSON whatever its content type, so an event posted as a form (or as
`text/plain`) would be taken. A request whose content type Slack never sends, or whose body
is not what that content type carries from Slack (an event in a form, an interaction as
JSON), is refused 415. A body must arrive within `body_timeout_s` of the headers (Slack
sends each request whole and gives up on its answer after 3 s): a slow body is refused 408,
and a client that goes away mid-body is one line, not an ERROR with a traceback.
"""

from __future__ import annotations

import asyncio
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
# From the end of the headers to the end of the body; Slack waits 3 s for the whole answer.
BODY_TIMEOUT_S = 10.0
JSON = "application/json"  # Events API callbacks
FORM = "application/x-www-form-urlencoded"  # slash commands, interactivity payloads
EVENT_ENVELOPES = frozenset({"event_callback", "url_verification", "app_rate_limited"})
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a request was turned away, and the HTTP status it gets."""

    status: int
    reason: str


async def admit(
    request: web.Request, verifier: SignatureVerifier, *, body_timeout_s: float = BODY_TIMEOUT_S
) -> AsyncBoltRequest | Refused:
    """The request as Bolt takes it, or why it is refused (already logged, in one line)."""
    outcome = await _check(request, verifier, body_timeout_s)
    if isinstance(outcome, Refused):
        log.warning(
            "refused a request to %s: %s (%s bytes from %s)",
            request.path,
            outcome.reason,
            request.content_length if request.content_length is not None else "?",
            request.remote or "?",
        )
    return outcome


async def _check(
    request: web.Request, verifier: SignatureVerifier, body_timeout_s: float
) -> AsyncBoltRequest | Refused:
    if request.content_type not in (JSON, FORM):
        return Refused(415, "a content type Slack never sends")
    try:
        async with asyncio.timeout(body_timeout_s):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return Refused(413, "body too large")
    except TimeoutError:
        return Refused(408, f"body not received within {body_timeout_s:g} s")
    except ConnectionError:
        return Refused(400, "the client went away mid-body")
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
    is_event = body.get("type") in EVENT_ENVELOPES
    if request.content_type == JSON and not is_event:
        return Refused(415, "JSON that is not an Events API callback")
    if request.content_type == FORM and (is_event or text.lstrip().startswith("{")):
        return Refused(415, "JSON sent as a form")
    return AsyncBoltRequest(
        body=text,
        query=request.query_string,
        headers=request.headers,  # type: ignore[arg-type]
    )
