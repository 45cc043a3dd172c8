"""Dated list prices and the arithmetic that turns token usage into exact dollars.

`PriceTable` is loaded from a JSON file (the packaged `bot/core/prices.json`, or `PRICES_FILE`)
that states per model the rates per million tokens for uncached input, 5-minute and 1-hour
cache writes, cache reads and output, as decimal strings, plus an optional long-prompt band
(Haiku 5.5 bills a whole request at higher rates once its prompt passes 100K tokens). Costs
are `Decimal` dollars, never floats; a model missing from the table is *unpriced* (`None`),
never $0. `summarize` prices a run's calls; `blocks.format_usd` is the one way money is shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from bot.core.usage import CallRecord, TokenUsage

RATE_KEYS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
# Dated snapshots ("claude-haiku-4-5-20251001") bill like their alias.
_SNAPSHOT_SUFFIX = re.compile(r"-\d{8}$")


@dataclass(frozen=True, slots=True)
class ModelCost:
    """One model's share of a run: tokens and dollars (None when the model is unpriced)."""

    model: str
    calls: int
    usage: TokenUsage
    cost_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class CostSummary:
    """A run's bill. `total_usd` is None when any call is unpriced; so is the comparison."""

    by_model: tuple[ModelCost, ...]
    total_usd: Decimal | None
    all_strategy_model_usd: Decimal | None
    strategy_model: str

    @property
    def saving_pct(self) -> Decimal | None:
        if self.total_usd is None or not self.all_strategy_model_usd:
            return None
        return (1 - self.total_usd / self.all_strategy_model_usd) * 100

    @property
    def unpriced_models(self) -> tuple[str, ...]:
        return tuple(m.model for m in self.by_model if m.cost_usd is None)


@dataclass(frozen=True, slots=True)
class Rates:
    """Dollars per million tokens for each billable bucket."""

    input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal

    def price(self, usage: TokenUsage) -> Decimal:
        per_million = (
            self.input * usage.input_tokens
            + self.cache_write_5m * usage.cache_write_5m_tokens
            + self.cache_write_1h * usage.cache_write_1h_tokens
            + self.cache_read * usage.cache_read_tokens
            # Thinking is already inside output_tokens: adding it again would bill it twice.
            + self.output * usage.output_tokens
        )
        return per_million.scaleb(-6)  # exact: a power-of-ten shift, no division


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A model's rates, with the band that reprices the whole request above a prompt size."""

    base: Rates
    long_prompt: Rates | None = None
    long_prompt_above: int | None = None

    def rates_for(self, usage: TokenUsage) -> Rates:
        if (
            self.long_prompt is not None
            and self.long_prompt_above is not None
            and usage.prompt_tokens > self.long_prompt_above
        ):
            return self.long_prompt
        return self.base


class PriceTable:
    """List prices as of a date; `cost` is exact, and None for a model it does not know."""

    def __init__(self, *, as_of: date, source: str, models: Mapping[str, ModelPrice]) -> None:
        self.as_of = as_of
        self.source = source
        self.models: Mapping[str, ModelPrice] = dict(models)

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        """Read `path`, or the packaged `bot/core/prices.json` when None; malformed → ValueError."""
        if path is None:
            resource = resources.files("bot.core").joinpath("prices.json")
            return _parse_table(resource.read_text(encoding="utf-8"), "bot/core/prices.json")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"price file {path}: cannot be read ({exc.strerror})") from None
        return _parse_table(text, str(path))

    def price_of(self, model: str) -> ModelPrice | None:
        found = self.models.get(model)
        if found is None:
            found = self.models.get(_SNAPSHOT_SUFFIX.sub("", model))
        return found

    def cost(self, model: str, usage: TokenUsage) -> Decimal | None:
        """Exact dollars for `usage` billed by `model`; None when `model` is unpriced."""
        return self.cost_as(model, usage)

    def cost_as(self, model: str, usage: TokenUsage) -> Decimal | None:
        """The same buckets priced at `model`'s rates (for 'as if all on the strategy model')."""
        price = self.price_of(model)
        if price is None:
            return None
        return price.rates_for(usage).price(usage)


def summarize(
    calls: Iterable[CallRecord], *, prices: PriceTable, strategy_model: str
) -> CostSummary:
    """Price a run: per model, the total (None if any call is unpriced), and all-strategy."""
    calls = list(calls)
    by_model = tuple(_model_cost(model, calls, prices) for model in _models_in_order(calls))
    costs = [m.cost_usd for m in by_model]
    return CostSummary(
        by_model=by_model,
        total_usd=None if None in costs else sum((c for c in costs if c is not None), Decimal(0)),
        all_strategy_model_usd=_sum_or_none(prices.cost_as(strategy_model, c.usage) for c in calls),
        strategy_model=strategy_model,
    )


def _models_in_order(calls: list[CallRecord]) -> list[str]:
    return list(dict.fromkeys(c.model for c in calls))


def _model_cost(model: str, calls: list[CallRecord], prices: PriceTable) -> ModelCost:
    mine = [c for c in calls if c.model == model]
    return ModelCost(
        model=model,
        calls=len(mine),
        usage=sum((c.usage for c in mine), TokenUsage()),
        cost_usd=_sum_or_none(prices.cost(model, c.usage) for c in mine),
    )


def _sum_or_none(amounts: Iterable[Decimal | None]) -> Decimal | None:
    # A partial sum would understate the bill: one unknown figure makes the total unknown.
    total = Decimal(0)
    for amount in amounts:
        if amount is None:
            return None
        total += amount
    return total


# --- parsing the price file -------------------------------------------------------------


def _parse_table(text: str, name: str) -> PriceTable:
    def fail(problem: str) -> ValueError:
        return ValueError(f"price file {name}: {problem}")

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise fail("the top level must be a JSON object")
    try:
        return PriceTable(
            as_of=_as_of(data),
            source=_text(data, "source"),
            models=_models(data),
        )
    except ValueError as exc:
        raise fail(str(exc)) from None


def _as_of(data: Mapping[str, Any]) -> date:
    raw = _text(data, "as_of")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f'"as_of" must be a date like "2026-11-01", not {raw!r}') from None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'"{key}" must be a non-empty string')
    return value


def _models(data: Mapping[str, Any]) -> dict[str, ModelPrice]:
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise ValueError('"models" must be an object with at least one model')
    return {name: _model_price(name, entry) for name, entry in models.items()}


def _model_price(name: str, entry: Any) -> ModelPrice:
    if not isinstance(entry, dict):
        raise ValueError(f"model {name!r} must be an object of rates")
    band = entry.get("long_prompt")
    if band is None:
        return ModelPrice(base=_rates(name, entry))
    if not isinstance(band, dict):
        raise ValueError(f"model {name!r}: long_prompt must be an object")
    above = band.get("above_prompt_tokens")
    if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
        raise ValueError(f"model {name!r}: long_prompt.above_prompt_tokens must be a whole number")
    return ModelPrice(
        base=_rates(name, entry),
        long_prompt=_rates(f"{name} long_prompt", band),
        long_prompt_above=above,
    )


def _rates(where: str, entry: Mapping[str, Any]) -> Rates:
    return Rates(**{key: _rate(where, key, entry.get(key)) for key in RATE_KEYS})


def _rate(where: str, key: str, raw: Any) -> Decimal:
    # Strings only: a JSON number would pass through a binary float before it became money.
    if not isinstance(raw, str):
        raise ValueError(f'model {where!r}: "{key}" must be a decimal string like "4.00"')
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f'model {where!r}: "{key}"={raw!r} is not a decimal number') from None
    if not value.is_finite() or value < 0:
        raise ValueError(f'model {where!r}: "{key}"={raw!r} must be 0 or more')
    return value
