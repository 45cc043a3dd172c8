"""The domain's value types: a strategy and its components, and a review of its examples.

Frozen dataclasses shared by the prompts, the Claude client, the pipeline's events and the
Slack edge's rendering. They carry text exactly as the model wrote it; escaping for Slack
happens in `blocks/`, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["ok", "warning", "problem"]


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    instruction: str


@dataclass(frozen=True, slots=True)
class Strategy:
    title: str
    essence: str
    components: tuple[Component, ...]


@dataclass(frozen=True, slots=True)
class Check:
    component: str
    verdict: Verdict
    reason: str


@dataclass(frozen=True, slots=True)
class Review:
    checks: tuple[Check, ...]
    gaps: tuple[str, ...]
    next_steps: tuple[str, ...]
