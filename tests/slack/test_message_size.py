"""Nothing a run writes is lost to Slack's size limits, over the wire against the Slack sandbox.

The sandbox refuses, as Slack does, a message whose blocks carry too much text in total
(`msg_blocks_too_long`). The app keeps every message under its budget, recovers from a size
refusal by posting smaller messages, and when even that fails says in the thread what is
missing instead of dropping it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import blocks
from blocks import markdown_to_mrkdwn
from blocks.controls import STOP_ACTION
from bot.core.events import ExampleReady, RunStarted, StrategyReady
from bot.core.models import Component, Strategy
from bot.sandbox.slack.server import SlackSandbox
from bot.slack.poster import Poster
from bot.slack.render import ThreadRenderer
from tests.harness import running_stack

QUESTION = "Design a REST API for a social network"


def dense(size: int) -> str:
    words = "dense words without breaks "
    return (words * (size // len(words) + 1))[:size]


def section_texts(message: Any) -> list[str]:
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]


def section_text(message: Any) -> str:
    return "".join(section_texts(message))


async def test_an_11500_character_example_is_delivered_whole(tmp_path: Path) -> None:
    example = dense(11_500)
    async with running_stack(tmp_path) as stack:
        stack.claude.add_rule(role="example", times=1, text=example)
        await stack.command(QUESTION)
        await stack.settle()
        _, replies = stack.thread()
        refused = [c.error for c in stack.slack.calls_to("chat.postMessage") if not c.ok]
    assert refused == []
    pages = [section_texts(r) for r in replies if "dense words" in section_text(r)]
    assert len(pages) == 2 and "(continued 2/2)" in pages[1][0]
    assert "".join(text for page in pages for text in page[1:]) == markdown_to_mrkdwn(example)


@pytest.fixture
async def slack() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox() as sandbox:
        yield sandbox


def poster_for(slack: SlackSandbox) -> Poster:
    return Poster(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), rate=1000.0)


async def test_a_size_refusal_is_recovered_by_posting_smaller_messages(slack: SlackSandbox) -> None:
    text = dense(9_000)
    messages = blocks.example_messages(
        index=1, total=1, component=Component("Big", "x"), markdown=text, model="claude-haiku-5-5"
    )
    parent = await poster_for(slack).post("C0GENERAL", blocks.error_message("parent"))
    slack.fail_next("chat.postMessage", error="msg_blocks_too_long", times=1)
    await poster_for(slack).post("C0GENERAL", messages[0], thread_ts=parent)
    replies = slack.replies("C0GENERAL", parent)
    assert len(replies) >= 2
    assert text in "".join(section_text(r) for r in replies)


async def test_a_message_slack_never_accepts_is_named_in_the_thread(slack: SlackSandbox) -> None:
    parent = await poster_for(slack).post("C0GENERAL", blocks.error_message("parent"))
    renderer = ThreadRenderer(
        poster_for(slack), channel="C0GENERAL", thread_ts=parent, asker_id="U0ALICE", question="q"
    )
    component = Component("Doomed", "x")
    strategy = Strategy(title="t", essence="e", components=(component,))
    models = ("claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-5-5")
    await renderer(RunStarted(question="q", models=models))
    await renderer(StrategyReady(strategy=strategy, model=models[0]))
    # The example, its halves and its quarters are all refused: 1 + 2 + 4 posts.
    slack.fail_next("chat.postMessage", error="invalid_blocks", times=7)
    example = "The doomed example begins here. " + dense(8_000)
    await renderer(ExampleReady(index=0, component=component, markdown=example, model=models[1]))
    (notice,) = slack.replies("C0GENERAL", parent)
    shown = json.dumps(notice.blocks)
    assert "Slack refused example 1" in shown and "invalid_blocks" in shown
    assert "8,0" in shown  # how many characters are missing
    assert "The doomed example begins here." in shown


async def test_a_run_whose_every_example_failed_never_says_done(tmp_path: Path) -> None:
    async with running_stack(tmp_path, anthropic_max_retries=0) as stack:
        stack.claude.add_rule(role="example", fault="server_error")
        await stack.command(QUESTION)
        await stack.settle()
        top, replies = stack.thread()
    shown = top.text + json.dumps(top.blocks, ensure_ascii=False)
    assert "Done" not in shown
    assert "No example could be written" in shown
    assert re.search(r"failed: [^)]+\) · \$\d+\.\d{4} spent in", shown)
    assert sum("could not be illustrated" in json.dumps(r.blocks) for r in replies) >= 2


async def test_a_long_question_whose_rest_cannot_be_posted_leaves_no_planning_message(
    tmp_path: Path,
) -> None:
    question = "&" * 4_000  # too long for the first message once escaped: the rest is threaded
    async with running_stack(tmp_path, max_question_chars=5_000) as stack:
        # The first message lands; the thread reply with the rest of the question is refused.
        stack.slack.fail_next("chat.postMessage", error="channel_not_found", times=5, after=1)
        await stack.command(question)
        await stack.settle()
        top = stack.slack.messages("C0GENERAL")[-1]
        ephemerals = stack.slack.ephemerals("U0ALICE")
    shown = top.text + json.dumps(top.blocks, ensure_ascii=False)
    assert "planning" not in shown and "did not start" in shown
    assert STOP_ACTION not in shown  # no Stop button on a run that is not running
    assert stack.claude.requests == []
    assert ephemerals  # the asker is told too
