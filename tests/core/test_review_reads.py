"""REVIEW_READS=code: the review reads each example's heading, opening and code only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core import prompts
from bot.core.claude import Claude
from bot.core.models import Component, Strategy
from bot.core.pricing import PriceTable
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.settings import Settings, SettingsError

EXAMPLE = """# Pagination

Cursor pagination keeps feeds stable.

```python
def page(cursor):
    ## not a heading: inside the code
    return fetch(after=cursor)
```

## Why this works
A cursor names a row, so inserts do not shift pages.

## Integration point
The router calls it for every list."""


def test_the_excerpt_keeps_heading_opening_and_code_and_drops_the_prose() -> None:
    excerpt = prompts.example_excerpt(EXAMPLE)
    assert excerpt.startswith("# Pagination\n\nCursor pagination keeps feeds stable.")
    assert "## not a heading: inside the code" in excerpt and excerpt.count("```") == 2
    assert "Why this works" not in excerpt and "inserts do not shift" not in excerpt
    assert "Integration point" not in excerpt and "router" not in excerpt
    assert prompts.example_excerpt("Just prose, no headings.") == "Just prose, no headings."


@pytest.mark.parametrize("reads", ["examples", "code"])
async def test_the_review_request_follows_review_reads(reads: str) -> None:
    strategy = Strategy("T", "E", (Component("Pagination", "show cursors"), Component("B", "b")))
    outcomes = [
        prompts.ExampleOutcome(strategy.components[0], EXAMPLE),
        prompts.ExampleOutcome(strategy.components[1], None, "timed out"),
    ]
    async with ClaudeSandbox(latency=LatencyModel(time_scale=0.0)) as sandbox:
        settings = replace(
            Settings(),
            anthropic_api_key=sandbox.api_key,
            anthropic_base_url=sandbox.base_url,
            review_reads=reads,
        )
        claude = Claude.from_settings(settings, price=PriceTable.load().cost)
        reply = await claude.review("q", strategy, outcomes)
        await claude.aclose()
        (request,) = sandbox.messages()
    assert reply.value is not None
    text = request.body["messages"][0]["content"][0]["text"]
    assert "return fetch(after=cursor)" in text and 'status="failed">timed out' in text
    assert ("inserts do not shift" in text) is (reads == "examples")
    assert ("explanations left out" in text) is (reads == "code")


def test_review_reads_accepts_only_its_two_values() -> None:
    assert Settings.from_env({"REVIEW_READS": "code"}, dotenv=None).review_reads == "code"
    assert Settings.from_env({}, dotenv=None).review_reads == "examples"
    with pytest.raises(SettingsError, match="REVIEW_READS must be one of examples, code"):
        Settings.from_env({"REVIEW_READS": "all"}, dotenv=None)
