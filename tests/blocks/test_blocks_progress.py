"""The progress message's words: stream chunks slack_sdk's models accept, inside Slack's
field limits, and a Block Kit form that validates; every model string inert."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

import pytest
from slack_sdk.models.messages.chunk import Chunk

import blocks
from blocks.progress import FIELD_LIMIT, ProgressStep, ProgressView
from tests.blocks.blocks_sample_data import HAIKU, HOSTILE, OPUS, SONNET, cost
from tests.blocks.slack_checks import assert_valid_message

STEPS = (
    ProgressStep("plan", "plan", OPUS, state="complete", calls=1, cost_usd=Decimal("0.01")),
    ProgressStep("example-1", "example", HAIKU, state="in_progress", number=1, of=2, name="Auth"),
    ProgressStep("example-2", "example", HAIKU, state="in_progress", number=2, of=2, name="Feed"),
    ProgressStep("review", "review", SONNET),
)


def test_the_title_says_what_is_being_worked_on_then_how_the_run_ended() -> None:
    assert blocks.progress_chunks(ProgressView(STEPS))[0] == {
        "type": "plan_update",
        "title": "Haiku is writing 2 of 2 examples…",
    }
    one_left = (STEPS[0], replace(STEPS[1], state="complete"), *STEPS[2:])
    assert blocks.progress_chunks(ProgressView(one_left))[0]["title"] == (
        "Haiku is writing 1 of 2 examples…"
    )
    reviewing = (
        *(replace(s, state="complete") for s in STEPS[:3]),
        replace(STEPS[3], state="in_progress"),
    )
    assert blocks.progress_chunks(ProgressView(reviewing))[0]["title"] == "Sonnet is reviewing…"
    done = ProgressView(STEPS, outcome="done", cost=cost(), elapsed_s=3.0)
    assert blocks.progress_chunks(done)[0]["title"].startswith("Done in 3.0 s · $")


def test_every_chunk_is_one_slack_sdk_knows_without_unknown_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        parsed = [Chunk.parse(c) for c in blocks.progress_chunks(ProgressView(STEPS))]
    assert all(
        p is not None and p.to_dict() == c
        for p, c in zip(parsed, blocks.progress_chunks(ProgressView(STEPS)), strict=True)
    )
    assert not caplog.records  # slack_sdk warns about unknown keys and chunk types


def test_a_runaway_or_hostile_component_name_fits_and_pings_no_one() -> None:
    step = ProgressStep(
        "example-1", "example", HAIKU, state="error", number=1, of=1,
        name=HOSTILE * 40, problem=HOSTILE * 40,
    )  # fmt: skip
    chunk = blocks.task_chunk(step)
    for field in ("title", "details"):
        assert len(chunk[field].encode()) <= FIELD_LIMIT
        assert "<!channel>" not in chunk[field] and "<@U123>" not in chunk[field]
    view = ProgressView((step,), outcome="failed", reason=HOSTILE, cost=cost())
    message = blocks.progress_message(view)
    assert_valid_message(message)
    assert "<!channel>" not in str(message.blocks) and "<@U123>" not in str(message.blocks)
    assert "<!channel>" not in blocks.progress_summary(view)


def test_the_block_kit_form_lists_each_step_with_its_mark() -> None:
    message = blocks.progress_message(ProgressView(STEPS))
    assert_valid_message(message)
    lines = message.blocks[0]["text"]["text"].splitlines()
    assert lines[0] == "✓ *Opus*: strategy · $0.0100 · claude-opus-5-5"
    assert lines[1].startswith("⏳ *Haiku*: example 1 of 2 — Auth")
    assert lines[3] == "○ *Sonnet*: review · waiting"
    stopped = ProgressView(
        tuple(replace(s, state="error", stopped_by="U0BOB") if s.open else s for s in STEPS),
        outcome="stopped",
        stopped_by="U0BOB",
        cost=cost(),
        elapsed_s=2.0,
    )
    shown = str(blocks.progress_message(stopped).blocks)
    assert "✗ *Sonnet*: review · stopped by <@U0BOB>" in shown
    assert "■ Stopped by <@U0BOB> after 2.0 s" in shown


def test_a_component_name_cannot_forge_a_markdown_link_in_a_task_or_the_summary() -> None:
    forged = "[the docs](https://evil.example/login)"
    step = ProgressStep(
        "example-1", "example", HAIKU, state="error", number=1, of=1, name=forged, problem=forged
    )
    chunk = blocks.task_chunk(step)
    view = ProgressView((step,), outcome="failed", reason=forged, cost=cost())
    for shown in (chunk["title"], chunk["details"], blocks.progress_summary(view)):
        assert "the docs" in shown and "](" not in shown
