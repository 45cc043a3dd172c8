"""HTTP mode's front door: what Slack's signed requests get, and what everything else gets.

A refused request is answered with a 4xx (never a 500) and logged as one short line that
carries no byte of its body.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import aiohttp
import pytest

from tests.harness import running_stack

QUESTION = "Design a REST API for a social network"


async def post(url: str, body: bytes | str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status


@pytest.mark.parametrize("timestamp", ["soon", "", "1e9", "١٢٣", "-5"])
async def test_a_non_numeric_timestamp_gets_401_not_500(tmp_path: Path, timestamp: str) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        body = stack.slack.slash_command_body(text=QUESTION)
        headers = stack.slack.signed_request(body)
        headers["X-Slack-Request-Timestamp"] = timestamp
        status = await post(stack.events_url, body, headers)
        await stack.settle(runs=0)
    assert status == 401
    assert stack.claude.requests == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2, 3]", "application/json"),
        ('"a string"', "application/json"),
        ("payload=%7Bnot+json", "application/x-www-form-urlencoded"),
        ("", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_malformed_signed_body_gets_400_not_500(
    tmp_path: Path, body: str, content_type: str
) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        headers = stack.slack.signed_request(body, content_type=content_type)
        status = await post(stack.events_url, body, headers)
    assert status == 400


async def test_a_body_that_is_not_utf8_gets_400(tmp_path: Path) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        raw = b"text=\xff\xfe&command=%2Forchestrate"
        headers = stack.slack.signed_request(raw.decode("latin-1"))
        status = await post(stack.events_url, raw, headers)
    assert status == 400


async def test_a_refused_genuine_request_is_logged_in_one_line_without_its_response_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        assert stack.events_url is not None
        body = stack.slack.slash_command_body(text=QUESTION)
        stale = stack.slack.signed_request(body, timestamp=int(time.time()) - 600)
        forged = stack.slack.signed_request(body, secret="not-the-secret")
        with caplog.at_level(logging.DEBUG):
            caplog.clear()
            statuses = [await post(stack.events_url, body, h) for h in (stale, forged)]
            records = list(caplog.records)
    assert statuses == [401, 401]
    logged = "\n".join(r.getMessage() for r in records)
    assert "response_url" not in logged and "/commands/" not in logged
    assert QUESTION.split()[0] not in logged
    refusals = [r for r in records if r.name == "bot.slack.gate"]
    assert [r.getMessage().split(": ", 1)[1].split(" (")[0] for r in refusals] == [
        "stale timestamp",
        "bad signature",
    ]
    assert all(len(r.getMessage()) < 200 for r in refusals)
