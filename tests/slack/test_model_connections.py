"""A Claude connection that dies mid-stream, under the real app.

The Claude stand-in cuts one example's stream half-way (or makes it outlast the call
timeout). That example alone fails, named in the thread; the others and the review are
delivered; the run closes with no "⏳" left; and every call the stand-in served is in the
ledger, the cut one with its output estimated from what it had streamed, which the footer
shows with "≈".
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Stack, running_stack

QUESTION = "Design a REST API for a social network"


def shown(message: Any) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


async def ledger_rows(stack: Stack) -> dict[str, dict[str, str]]:
    ledger = stack.services.ledger
    out = io.StringIO()
    await ledger.export.calls_csv(None, datetime.now(UTC) - timedelta(hours=1), out)
    return {row["request_id"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}


@pytest.mark.parametrize(
    ("rule", "overrides"),
    [
        ({"fault": "disconnect"}, {}),
        ({"delay_s": 30.0}, {"call_timeout_s": 1.0}),  # streams slowly past the timeout
    ],
    ids=["connection-cut", "timeout"],
)
async def test_an_example_whose_stream_dies_fails_alone_and_its_usage_is_recorded(
    tmp_path: Path, rule: dict[str, Any], overrides: dict[str, Any]
) -> None:
    async with running_stack(tmp_path, **overrides) as stack:
        stack.claude.add_rule(role="example", times=1, **rule)
        await stack.command(QUESTION)
        await stack.settle()

        top, replies = stack.thread()
        rows = await ledger_rows(stack)
        served = [r for r in stack.claude.messages() if r.status == 200]

    assert "⏳" not in shown(top) and "Done" in shown(top)
    failed = [r for r in replies if "could not be illustrated" in r.text]
    assert len(failed) == 1
    assert any("Review by" in r.text for r in replies)
    # Every call the stand-in answered is in the ledger; the cut one is estimated.
    assert sorted(rows) == sorted(r.request_id for r in served)
    cut = next(r for r in served if r.role == "example" and r.streamed_tokens and r.error_type)
    assert rows[cut.request_id]["estimated"] == "1"
    assert rows[cut.request_id]["outcome"] in ("error", "timeout")
    assert int(rows[cut.request_id]["output_tokens"]) > 1
    others = [rows[r.request_id] for r in served if r.request_id != cut.request_id]
    assert all(row["estimated"] == "0" for row in others)
    assert any("≈" in shown(r) for r in replies)  # the footer says its total includes one
