"""`bot.events` types satisfy the Protocols `blocks` renders, checked by mypy itself.

`blocks` mirrors the pipeline's types instead of importing them; if a field is renamed or retyped
in `bot.events`, this test fails here rather than the Slack edge failing at run time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]

CONFORMANCE = """
from bot.events import Check, Component, CostSummary, ModelCost, Review, Strategy
from bot.usage import TokenUsage
from blocks.types import (
    CheckView, ComponentView, CostSummaryView, ModelCostView, ReviewView, StrategyView, UsageView,
)

def conforms(
    component: Component, strategy: Strategy, check: Check, review: Review,
    usage: TokenUsage, model_cost: ModelCost, summary: CostSummary,
) -> None:
    c: ComponentView = component
    s: StrategyView = strategy
    k: CheckView = check
    r: ReviewView = review
    u: UsageView = usage
    m: ModelCostView = model_cost
    t: CostSummaryView = summary
"""

DRIFTED = """
from dataclasses import dataclass
from blocks.types import ComponentView

@dataclass(frozen=True)
class Renamed:
    title: str
    instruction: str

c: ComponentView = Renamed("a", "b")
"""


def _mypy(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    module = tmp_path / "conformance.py"
    module.write_text(source)
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    out, err, status = api.run(["--strict", "--cache-dir", str(ROOT / ".mypy_cache"), str(module)])
    return out + err, status


def test_bot_event_types_satisfy_the_blocks_protocols(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output, status = _mypy(CONFORMANCE, tmp_path, monkeypatch)
    assert status == 0, output


def test_a_type_missing_a_field_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output, status = _mypy(DRIFTED, tmp_path, monkeypatch)
    assert status == 1
    assert "ComponentView" in output
