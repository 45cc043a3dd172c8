"""The Claude stand-in's part in an eval: the all-Opus baseline, the judge, cache minimums.

Driven with the real SDK through `Claude`, as `orchestrate-bot eval` calls them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import anthropic
import pytest

from bot.core import prompts
from bot.core.claude import Claude
from bot.core.models import Component, Strategy
from bot.core.pricing import PriceTable
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.settings import Settings

QUESTION = "Design a REST API for a social network"


@pytest.fixture
async def sandbox() -> AsyncIterator[ClaudeSandbox]:
    async with ClaudeSandbox(latency=LatencyModel(time_scale=0.0)) as running:
        yield running


@pytest.fixture
async def claude(sandbox: ClaudeSandbox) -> AsyncIterator[Claude]:
    settings = replace(
        Settings(), anthropic_api_key=sandbox.api_key, anthropic_base_url=sandbox.base_url
    )
    client = Claude.from_settings(settings, price=PriceTable.load().cost)
    yield client
    await client.aclose()


async def test_the_baseline_is_one_opus_answer_with_strategy_examples_and_review(
    sandbox: ClaudeSandbox, claude: Claude
) -> None:
    reply = await claude.baseline(QUESTION)
    assert reply.value is not None and reply.call.role == "baseline"
    assert reply.value.count("```") >= 4  # at least two components with code
    assert "## Review" in reply.value and "Next steps" in reply.value
    (request,) = sandbox.messages()
    assert request.role == "baseline" and request.status == 200
    assert request.body["model"] == "claude-opus-5-5"
    assert reply.call.cost_usd and reply.call.usage.thinking_tokens > 0


async def test_the_stand_in_judge_does_not_care_which_answer_comes_first(claude: Claude) -> None:
    first, second = "# Plan A\n\nShort and right.", "# Plan B\n\nLonger, and wrong in places."
    forward = await claude.judge(QUESTION, first, second, model="claude-opus-5-5")
    backward = await claude.judge(QUESTION, second, first, model="claude-opus-5-5")
    assert forward.value is not None and backward.value is not None
    assert forward.value.a == backward.value.b and forward.value.b == backward.value.a
    swapped = {"A": "B", "B": "A", "tie": "tie"}
    assert backward.value.winner == swapped[forward.value.winner]
    assert forward.call.role == "judge"


async def test_a_judge_answer_outside_the_rubric_is_invalid_not_a_verdict(
    sandbox: ClaudeSandbox, claude: Claude
) -> None:
    sandbox.add_rule(
        role="judge",
        text='{"a": {"correct": 9, "complete": 1, "actionable": 1, "concise": 1},'
        ' "b": {"correct": 1, "complete": 1, "actionable": 1, "concise": 1},'
        ' "winner": "A", "reason": "x"}',
    )
    reply = await claude.judge(QUESTION, "a", "b", model="claude-opus-5-5")
    assert reply.value is None and reply.call.outcome == "invalid"
    assert reply.call.cost_usd  # its usage is still counted


def example_request(question: str, *, model: str) -> dict[str, object]:
    strategy = Strategy("T", "E " * 40, (Component("A", "show a"), Component("B", "show b")))
    context = {
        "type": "text",
        "text": prompts.example_context(question, strategy),
        "cache_control": {"type": "ephemeral"},
    }
    return {
        "model": model,
        "max_tokens": 4096,
        "system": prompts.EXAMPLE_SYSTEM,
        "messages": [{"role": "user", "content": [context, {"type": "text", "text": "go"}]}],
        "output_config": {"effort": "low"},
    }


@pytest.mark.parametrize(("minimums", "cached"), [(None, False), ({"claude-haiku-5-5": 512}, True)])
async def test_the_cache_minimum_is_the_stricter_one_unless_configured(
    minimums: dict[str, int] | None, cached: bool
) -> None:
    question = "Design a REST API for a social network. " * 40  # a prefix of ~1,000 tokens
    async with ClaudeSandbox(latency=LatencyModel(time_scale=0.0), cache_minimums=minimums) as sb:
        client = anthropic.AsyncAnthropic(api_key=sb.api_key, base_url=sb.base_url)
        body = example_request(question, model="claude-haiku-5-5")
        first = await client.messages.create(**body)  # type: ignore[call-overload]
        second = await client.messages.create(**body)  # type: ignore[call-overload]
        await client.close()
    written = first.usage.cache_creation_input_tokens or 0
    assert (written > 500) is cached
    assert ((second.usage.cache_read_input_tokens or 0) == written) is True
