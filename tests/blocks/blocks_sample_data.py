"""Sample pipeline data built from the real `bot.events` types, hostile and ordinary."""

from __future__ import annotations

from decimal import Decimal

from bot.core.models import Check, Component, Review, Strategy
from bot.core.pricing import CostSummary, ModelCost
from bot.core.usage import TokenUsage

OPUS, HAIKU, SONNET = "claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-5-5"
ASKER = "U0ASKER01"

HOSTILE = (
    "<!channel> <!here> <!everyone> @here @channel @everyone @Here <@U123> <#C123> "
    "<https://evil.example|innocent> <mailto:x@evil.example|bank> &lt;!channel&gt;"
)


def strategy(text: str = "", components: int = 4) -> Strategy:
    return Strategy(
        title=f"REST API for a social network {text}",
        essence=f"Resources first, then auth. {text}",
        components=tuple(
            Component(name=f"Part {n} {text}", instruction=f"Show part {n}. {text}")
            for n in range(1, components + 1)
        ),
    )


def review(text: str = "") -> Review:
    return Review(
        checks=(
            Check(component=f"Part 1 {text}", verdict="ok", reason=f"Covers it. {text}"),
            Check(component="Part 2", verdict="warning", reason=f"No pagination. {text}"),
            Check(component="Part 3", verdict="problem", reason="Leaks tokens in logs."),
        ),
        gaps=(f"Rate limiting {text}", "Versioning"),
        next_steps=(f"Add cursor pagination {text}", "Write contract tests"),
    )


def cost() -> CostSummary:
    """Hand-made figures whose rounding is checked: half-up, four decimals."""
    return CostSummary(
        by_model=(
            ModelCost(
                model=OPUS,
                calls=1,
                usage=TokenUsage(
                    input_tokens=1000,
                    output_tokens=500,
                    cache_write_5m_tokens=200,
                    cache_read_tokens=300,
                    thinking_tokens=200,
                ),
                cost_usd=Decimal("0.01234"),
            ),
            ModelCost(
                model=HAIKU,
                calls=4,
                usage=TokenUsage(input_tokens=8000, output_tokens=3100, cache_write_1h_tokens=200),
                cost_usd=Decimal("0.00125"),
            ),
            ModelCost(
                model=SONNET,
                calls=1,
                usage=TokenUsage(input_tokens=2400, output_tokens=600),
                cost_usd=Decimal("0.005625"),
            ),
        ),
        total_usd=Decimal("0.019215"),
        all_strategy_model_usd=Decimal("0.12"),
        strategy_model=OPUS,
    )


def unpriced_cost() -> CostSummary:
    return CostSummary(
        by_model=(
            ModelCost(model=OPUS, calls=1, usage=TokenUsage(100, 50), cost_usd=Decimal("0.0014")),
            ModelCost(model="claude-x", calls=4, usage=TokenUsage(400, 200), cost_usd=None),
        ),
        total_usd=None,
        all_strategy_model_usd=Decimal("0.0100"),
        strategy_model=OPUS,
    )
