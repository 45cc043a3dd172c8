"""Model facts the Claude sandbox needs: which ids exist, their family, whether they think.

Kept apart so validation, usage and latency agree on one reading of a model id. Facts
follow the team's platform reference (REFERENCE.md): 5.x models (`-5-5`) think by default
and Opus 5.5 always does; older models think only when asked; thinking spend follows
`output_config.effort`; the minimum cacheable prefix is 1,024 tokens for Sonnet and 4,096
for Opus and Haiku.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

Family = Literal["opus", "sonnet", "haiku"]

KNOWN_MODELS = frozenset(
    {
        "claude-opus-5-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
        "claude-opus-4-5",
        "claude-sonnet-4-5",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
    }
)
SANDBOX_MODEL_PREFIX = "claude-sandbox-"
NO_FORCED_TOOLS = frozenset({"claude-opus-5-5", "claude-sonnet-5-5"})
_THINKING_BY_EFFORT = {"low": 120, "medium": 400, "high": 1200, "xhigh": 1200, "max": 1200}
_DEFAULT_EFFORT = "high"  # the API's default when output_config.effort is absent
_CACHE_MINIMUM = {"opus": 4096, "sonnet": 1024, "haiku": 4096}


def is_known(model: str) -> bool:
    return model in KNOWN_MODELS or model.startswith(SANDBOX_MODEL_PREFIX)


def family(model: str) -> Family | None:
    for name in ("opus", "sonnet", "haiku"):
        if name in model:
            return name
    return None


def is_5x(model: str) -> bool:
    return "-5-5" in model


def cache_minimum(model: str) -> int:
    """Smallest prefix, in tokens, that the model will cache; shorter ones silently aren't."""
    return _CACHE_MINIMUM.get(family(model) or "sonnet", 1024)


def thinks(model: str, body: Mapping[str, Any]) -> bool:
    kind = _thinking_type(body)
    if model == "claude-opus-5-5":
        return True  # Opus 5.5 always thinks, even when sent {"type": "disabled"}
    if is_5x(model):
        return kind != "disabled"
    return kind in ("enabled", "adaptive")


def thinking_tokens(model: str, body: Mapping[str, Any], *, seed: str) -> int:
    """Billed thinking tokens: set by effort, ±10% by the prompt's hash, capped by a budget."""
    if not thinks(model, body):
        return 0
    output = body.get("output_config")
    effort = output.get("effort") if isinstance(output, Mapping) else None
    base = _THINKING_BY_EFFORT.get(str(effort or _DEFAULT_EFFORT), 1200)
    jitter = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:2], "big") / 65535
    tokens = round(base * (0.9 + 0.2 * jitter))
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
    return min(tokens, budget) if isinstance(budget, int) and budget > 0 else tokens


def thinking_display_omitted(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("display") == "omitted"


def _thinking_type(body: Mapping[str, Any]) -> str | None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    return str(kind) if kind is not None else None
