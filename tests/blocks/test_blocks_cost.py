"""The cost footer shows exact figures, rounded half-up, and never turns unpriced into $0."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from blocks_sample_data import HAIKU, OPUS, cost, unpriced_cost
from slack_checks import assert_valid_block

from blocks import cost_footer, format_elapsed, format_usd, model_label
from blocks.format import format_saving
from bot.core.pricing import CostSummary, ModelCost
from bot.core.usage import TokenUsage


def _lines(blocks: list[dict[str, object]]) -> list[str]:
    texts: list[str] = []
    for block in blocks:
        assert_valid_block(block)
        elements = block["elements"]
        assert isinstance(elements, list)
        texts.extend(line for element in elements for line in element["text"].split("\n"))
    return texts


def test_cost_footer_for_a_hand_made_bill() -> None:
    assert _lines(cost_footer(cost(), 12.34)) == [
        "*Opus* · 1 call · 1,500 in / 500 out (200 thinking) · $0.0123",
        "*Haiku* · 4 calls · 8,200 in / 3,100 out · $0.0013",
        "*Sonnet* · 1 call · 2,400 in / 600 out · $0.0056",
        "*Total $0.0192* · all on Opus: $0.1200 · saved 84% · ⏱ 12.3 s",
    ]


def test_unpriced_model_is_named_and_never_costed_at_zero() -> None:
    lines = _lines(cost_footer(unpriced_cost(), 3.0))
    assert lines[1] == "*claude-x* · 4 calls · 400 in / 200 out · unpriced"
    assert lines[2] == "*Total unpriced (claude-x has no list price)* · ⏱ 3.0 s"
    assert not any("$0.0000" in line or "saved" in line for line in lines)


def test_several_unpriced_models_are_all_named() -> None:
    bill = CostSummary(
        by_model=tuple(
            ModelCost(model=m, calls=1, usage=TokenUsage(), cost_usd=None) for m in ("x-1", "y-2")
        ),
        total_usd=None,
        all_strategy_model_usd=None,
        strategy_model=OPUS,
    )
    assert (
        _lines(cost_footer(bill, 1.0))[-1]
        == "*Total unpriced (x-1, y-2 have no list price)* · ⏱ 1.0 s"
    )


def test_two_versions_of_one_family_are_told_apart_by_id() -> None:
    usage = TokenUsage(10, 10)
    bill = CostSummary(
        by_model=(
            ModelCost(model=OPUS, calls=1, usage=usage, cost_usd=Decimal("0.001")),
            ModelCost(model="claude-opus-4-5", calls=1, usage=usage, cost_usd=Decimal("0.002")),
            ModelCost(model=HAIKU, calls=1, usage=usage, cost_usd=Decimal("0.0001")),
        ),
        total_usd=Decimal("0.0031"),
        all_strategy_model_usd=None,
        strategy_model=OPUS,
    )
    lines = _lines(cost_footer(bill, 1.0))
    assert lines[0].startswith("*Opus* `claude-opus-5-5` ·")
    assert lines[1].startswith("*Opus* `claude-opus-4-5` ·")
    assert lines[2].startswith("*Haiku* ·")


def test_a_run_without_calls_still_shows_its_total() -> None:
    bill = CostSummary(
        by_model=(), total_usd=Decimal(0), all_strategy_model_usd=None, strategy_model=OPUS
    )
    assert _lines(cost_footer(bill, 0.2)) == ["*Total $0.0000* · ⏱ 0.2 s"]


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("0.0192"), "$0.0192"),
        (Decimal("0.019249999"), "$0.0192"),
        (Decimal("0.01925"), "$0.0193"),  # half-up, where banker's rounding would give 0.0192
        (Decimal(0), "$0.0000"),
        (Decimal("0.00005"), "$0.0001"),
        (Decimal("0.00015"), "$0.0002"),
        (Decimal("0.00025"), "$0.0003"),
        (Decimal("0.000049"), "$0.0000"),
        (Decimal("1234.5"), "$1,234.5000"),
        (Decimal("-0.5"), "-$0.5000"),
        (Decimal("-1.5"), "-$1.5000"),  # the sign before the dollar, as everywhere
        (None, "unpriced"),
    ],
)
def test_format_usd_rounds_half_up_to_four_decimals(amount: Decimal | None, shown: str) -> None:
    assert format_usd(amount) == shown


@pytest.mark.parametrize(
    ("model", "label"),
    [
        ("claude-opus-5-5", "Opus"),
        ("claude-sonnet-4-5", "Sonnet"),
        ("CLAUDE-HAIKU-5-5", "Haiku"),
        ("gpt-x", "gpt-x"),
    ],
)
def test_model_label(model: str, label: str) -> None:
    assert model_label(model) == label


def test_elapsed_and_saving_wording() -> None:
    assert format_elapsed(12.34) == "12.3 s"
    assert format_elapsed(125.2) == "2 min 05 s"
    assert format_saving(Decimal("83.5")) == "saved 84%"
    assert format_saving(Decimal("-12.2")) == "cost 12% more"


def test_an_estimated_call_marks_its_figures_and_the_total_with_approx() -> None:
    bill = cost()
    haiku = bill.by_model[1]
    cut = replace(haiku, usage=replace(haiku.usage, estimated=True))
    estimated = replace(bill, by_model=(bill.by_model[0], cut, bill.by_model[2]))

    lines = _lines(cost_footer(estimated, 12.34))

    assert lines[0] == "*Opus* · 1 call · 1,500 in / 500 out (200 thinking) · $0.0123"
    assert lines[1] == "*Haiku* · 4 calls · 8,200 in / ≈3,100 out · ≈$0.0013"
    assert lines[3].startswith("*Total ≈$0.0192* · all on Opus: ≈$0.1200 · saved 84% · ⏱ 12.3 s")
    assert "cut off mid-answer" in lines[3]
    assert "≈" not in "".join(_lines(cost_footer(bill, 12.34)))
