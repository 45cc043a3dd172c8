"""`bot.events` and `bot.ledger.types` types satisfy the Protocols `blocks` renders, per mypy.

`blocks` mirrors the pipeline's and the ledger's types instead of importing them; if a field is
renamed or retyped there, this test fails here rather than the Slack edge failing at run time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]

CONFORMANCE = """
from datetime import datetime
from decimal import Decimal
from bot.core.models import Check, Component, Review, Strategy
from bot.core.pricing import CostSummary, ModelCost
from bot.ledger import Ledger
from bot.ledger.types import BudgetRefusal, CostReport, DayCost, RoleCost, Spender
from bot.core.usage import TokenUsage
from blocks.types import (
    BudgetRefusalView, CheckView, ComponentView, CostReportView, CostSummaryView, DayCostView,
    ModelCostView, ReviewView, RoleCostView, SpenderView, StrategyView, UsageView,
)
from blocks import budget_refused_message, costs_summary_message, home_view

def conforms(
    component: Component, strategy: Strategy, check: Check, review: Review,
    usage: TokenUsage, model_cost: ModelCost, summary: CostSummary,
    report: CostReport, day: DayCost, role: RoleCost, spender: Spender,
    refusal: BudgetRefusal,
) -> None:
    c: ComponentView = component
    s: StrategyView = strategy
    k: CheckView = check
    r: ReviewView = review
    u: UsageView = usage
    m: ModelCostView = model_cost
    t: CostSummaryView = summary
    cr: CostReportView = report
    d: DayCostView = day
    rc: RoleCostView = role
    sp: SpenderView = spender
    br: BudgetRefusalView = refusal

async def renders_what_the_ledger_returns(ledger: Ledger, since: datetime) -> None:
    # As the Slack edge does it: what the ledger returns goes straight into the builders.
    report = await ledger.reports.summary("T0TEAM", since=since, until=since)
    daily = await ledger.reports.daily("T0TEAM", days=30)
    costs_summary_message(report, period_label="month", is_admin=False)
    home_view(report=report, daily=daily, is_admin=True)
    votes = await ledger.interactions.feedback("T0TEAM", since=since, until=since)
    home_view(report=report, daily=daily, is_admin=True, feedback=votes)
    costs_summary_message(report, period_label="month", is_admin=True, feedback=votes)

async def words_a_refusal(ledger: Ledger, worst_case: Decimal) -> None:
    outcome = await ledger.runs.reserve_run(
        team_id="T0TEAM", channel_id="C1", user_id="U1", question="q",
        worst_case_usd=worst_case, user_budget=Decimal(0), workspace_budget=None,
    )
    if isinstance(outcome, BudgetRefusal):
        budget_refused_message(outcome)
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


def test_bot_event_and_ledger_types_satisfy_the_blocks_protocols(
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
