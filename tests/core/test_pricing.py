"""Pricing: hand-computed bills for every bucket, the Haiku band edge, unpriced models, files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from bot.core.pricing import PriceTable, summarize
from bot.core.usage import CallRecord, TokenUsage
from bot.settings import Settings

OPUS, SONNET, HAIKU = "claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    return PriceTable.load()


def call(model: str, usage: TokenUsage, role: str = "example") -> CallRecord:
    return CallRecord(
        role=role,  # type: ignore[arg-type]
        model=model,
        usage=usage,
        cost_usd=None,
        latency_s=1.0,
        outcome="ok",
    )


def test_packaged_table_is_dated_and_prices_every_reference_model(prices: PriceTable) -> None:
    assert (prices.as_of.year, prices.as_of.month) == (2026, 11)
    assert prices.source.startswith("Anthropic's published list prices")
    for model in (OPUS, SONNET, HAIKU, "claude-opus-4-5", "claude-sonnet-4-6", "claude-haiku-4-5"):
        assert prices.price_of(model) is not None, model


def test_every_bucket_of_an_opus_call_is_priced_at_its_own_rate(prices: PriceTable) -> None:
    usage = TokenUsage(
        input_tokens=1_000,
        cache_write_5m_tokens=2_000,
        cache_write_1h_tokens=1_000,
        cache_read_tokens=4_000,
        output_tokens=500,
    )
    # 1000×4 + 2000×5 + 1000×8 + 4000×0.20 + 500×20 = 32,800 per million
    assert prices.cost(OPUS, usage) == Decimal("0.0328")


def test_five_minute_and_one_hour_cache_writes_differ(prices: PriceTable) -> None:
    assert prices.cost(SONNET, TokenUsage(cache_write_5m_tokens=10_000)) == Decimal("0.025")
    assert prices.cost(SONNET, TokenUsage(cache_write_1h_tokens=10_000)) == Decimal("0.04")


def test_cache_reads_are_cheap(prices: PriceTable) -> None:
    # 10,000 × 0.01 per million for Haiku 5.5 below the band
    assert prices.cost(HAIKU, TokenUsage(cache_read_tokens=10_000)) == Decimal("0.0001")


def test_thinking_tokens_bill_as_output_and_only_once(prices: PriceTable) -> None:
    usage = TokenUsage(input_tokens=0, output_tokens=1_500, thinking_tokens=1_200)
    # output_tokens already includes thinking: 1,500 × 20 = 30,000 per million, not 2,700 × 20
    assert prices.cost(OPUS, usage) == Decimal("0.03")


def test_haiku_prompt_of_exactly_100k_stays_in_the_base_band(prices: PriceTable) -> None:
    usage = TokenUsage(input_tokens=99_000, cache_read_tokens=1_000, output_tokens=1_000)
    assert usage.prompt_tokens == 100_000
    # 99,000 × 0.10 + 1,000 × 0.01 + 1,000 × 0.50 = 10,410 per million
    assert prices.cost(HAIKU, usage) == Decimal("0.01041")


def test_haiku_prompt_of_100001_reprices_the_whole_request(prices: PriceTable) -> None:
    usage = TokenUsage(input_tokens=99_001, cache_read_tokens=1_000, output_tokens=1_000)
    assert usage.prompt_tokens == 100_001
    # 99,001 × 0.50 + 1,000 × 0.05 + 1,000 × 2.50 = 52,050.5 per million
    assert prices.cost(HAIKU, usage) == Decimal("0.0520505")


def test_band_counts_cache_writes_toward_the_prompt(prices: PriceTable) -> None:
    usage = TokenUsage(input_tokens=50_000, cache_write_1h_tokens=50_001)
    # 50,000 × 0.50 + 50,001 × 1.00 = 75,001 per million
    assert prices.cost(HAIKU, usage) == Decimal("0.075001")


def test_dated_snapshot_ids_bill_like_their_alias(prices: PriceTable) -> None:
    usage = TokenUsage(input_tokens=1_000, output_tokens=100)
    assert prices.cost("claude-haiku-4-5-20251001", usage) == prices.cost("claude-haiku-4-5", usage)


def test_unknown_model_is_unpriced_not_free(prices: PriceTable) -> None:
    assert prices.cost("claude-mystery-9", TokenUsage(input_tokens=10)) is None
    assert prices.cost_as("claude-mystery-9", TokenUsage(input_tokens=10)) is None


def test_run_summary_prices_each_model_and_compares_with_all_opus(prices: PriceTable) -> None:
    calls = [
        call(OPUS, TokenUsage(input_tokens=1_000, output_tokens=2_000), "plan"),
        call(HAIKU, TokenUsage(input_tokens=1_500, output_tokens=1_000)),
        call(HAIKU, TokenUsage(input_tokens=1_500, output_tokens=1_000)),
        call(SONNET, TokenUsage(input_tokens=4_000, output_tokens=600), "review"),
    ]
    summary = summarize(calls, prices=prices, strategy_model=OPUS)

    assert [(m.model, m.calls, m.cost_usd) for m in summary.by_model] == [
        (OPUS, 1, Decimal("0.044")),
        (HAIKU, 2, Decimal("0.0013")),
        (SONNET, 1, Decimal("0.014")),
    ]
    assert summary.by_model[1].usage == TokenUsage(input_tokens=3_000, output_tokens=2_000)
    assert summary.total_usd == Decimal("0.0593")
    # as Opus: 0.044 + 2 × (1,500×4 + 1,000×20)/1e6 + (4,000×4 + 600×20)/1e6
    assert summary.all_strategy_model_usd == Decimal("0.124")
    assert summary.saving_pct is not None
    assert round(summary.saving_pct, 2) == Decimal("52.18")


def test_one_unpriced_call_makes_the_run_total_unknown(prices: PriceTable) -> None:
    calls = [
        call(OPUS, TokenUsage(input_tokens=1_000), "plan"),
        call("claude-mystery-9", TokenUsage(input_tokens=1_000)),
    ]
    summary = summarize(calls, prices=prices, strategy_model=OPUS)

    assert summary.total_usd is None
    assert summary.unpriced_models == ("claude-mystery-9",)
    assert summary.by_model[0].cost_usd == Decimal("0.004")
    # The comparison re-prices buckets at Opus rates, so it stays known.
    assert summary.all_strategy_model_usd == Decimal("0.008")
    assert summary.saving_pct is None


def test_unpriced_strategy_model_leaves_the_comparison_unknown(prices: PriceTable) -> None:
    calls = [call(HAIKU, TokenUsage(input_tokens=1_000))]
    summary = summarize(calls, prices=prices, strategy_model="claude-mystery-9")
    assert summary.total_usd == Decimal("0.0001")
    assert summary.all_strategy_model_usd is None


def test_all_strategy_comparison_applies_the_strategy_models_band(prices: PriceTable) -> None:
    big = TokenUsage(input_tokens=100_001)
    summary = summarize([call(OPUS, big, "plan")], prices=prices, strategy_model=HAIKU)
    assert summary.all_strategy_model_usd == Decimal("0.0500005")


def test_prices_file_setting_overrides_the_packaged_table(tmp_path: Path) -> None:
    custom = {
        "as_of": "2026-12-01",
        "source": "negotiated contract",
        "models": {
            OPUS: {
                "input": "3.00",
                "cache_write_5m": "3.50",
                "cache_write_1h": "6.00",
                "cache_read": "0.15",
                "output": "15.00",
            }
        },
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(custom), encoding="utf-8")
    settings = Settings.from_env({"PRICES_FILE": str(path)}, dotenv=None)

    table = PriceTable.load(settings.prices_file)

    assert table.as_of.isoformat() == "2026-12-01"
    assert table.cost(OPUS, TokenUsage(input_tokens=1_000_000)) == Decimal("3.00")
    assert table.cost(HAIKU, TokenUsage(input_tokens=1)) is None


GOOD_RATES = {
    "input": "1",
    "cache_write_5m": "1",
    "cache_write_1h": "1",
    "cache_read": "1",
    "output": "1",
}


def table_json(model_entry: object) -> str:
    return json.dumps({"as_of": "2026-11-01", "source": "x", "models": {"m": model_entry}})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "top level must be a JSON object"),
        (json.dumps({"source": "x", "models": {"m": GOOD_RATES}}), '"as_of"'),
        (json.dumps({"as_of": "Nov 2026", "source": "x", "models": {"m": GOOD_RATES}}), "as_of"),
        (json.dumps({"as_of": "2026-11-01", "models": {"m": GOOD_RATES}}), '"source"'),
        (json.dumps({"as_of": "2026-11-01", "source": "x", "models": {}}), '"models"'),
        (
            table_json({**GOOD_RATES, "input": 4}),
            "model 'm': \"input\" must be a decimal string",
        ),
        (
            table_json({"input": "1"}),
            '"cache_write_5m"',
        ),
        (
            table_json({**GOOD_RATES, "output": "-1"}),
            "must be 0 or more",
        ),
        (
            table_json({**GOOD_RATES, "output": "x"}),
            "is not a decimal number",
        ),
        (
            table_json({**GOOD_RATES, "long_prompt": GOOD_RATES}),
            "above_prompt_tokens",
        ),
    ],
)
def test_malformed_price_file_names_the_file_and_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad-prices.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        PriceTable.load(path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_missing_price_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        PriceTable.load(tmp_path / "absent.json")
