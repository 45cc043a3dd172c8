"""Model facts the Claude sandbox needs: which ids exist, their family, whether they think.

Kept apart so validation, usage and latency agree on one reading of a model id. 5.5
models (`-5-5`) always think: `thinking: {type: disabled}` and `enabled` with a
`budget_tokens` are refused, and `output_config.effort` (default `medium`) sets how much
they think, enough at `high` and above to fill a 4,096-token `max_tokens`. Their thinking
text is omitted unless `display: summarized` is asked for. Older models think only when
asked and show a summary by default. The minimum cacheable prefix is 1,024 tokens for
Sonnet 4.x and 4,096 for Opus and Haiku; for 5.5 models it is unverified, so every 5.5 model
gets the stricter 4,096. Each model has its own output maximum (`max_output_tokens`).
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
# Billed thinking tokens by effort (±10%): from `high` up, more than a 4,096 max_tokens.
THINKING_BY_EFFORT = {"low": 120, "medium": 400, "high": 5000, "xhigh": 9000, "max": 16000}
DEFAULT_EFFORT = "medium"  # what a 5.5 model uses when output_config.effort is absent
_CACHE_MINIMUM = {"opus": 4096, "sonnet": 1024, "haiku": 4096}
UNVERIFIED_CACHE_MINIMUM = 4096  # the largest known minimum, for models whose own is unknown


# Each model's largest `max_tokens` (what `GET /v1/models/{id}` reports as `max_tokens`): 128K
# for the 5.5 models, 64K for the 4.x models here. A request above it is a 400.
_MAX_OUTPUT = {"5-5": 128_000}
DEFAULT_MAX_OUTPUT = 64_000


def max_output_tokens(model: str) -> int:
    return next((n for marker, n in _MAX_OUTPUT.items() if marker in model), DEFAULT_MAX_OUTPUT)


def is_known(model: str) -> bool:
    return model in KNOWN_MODELS or model.startswith(SANDBOX_MODEL_PREFIX)


def family(model: str) -> Family | None:
    for name in ("opus", "sonnet", "haiku"):
        if name in model:
            return name
    return None


def is_5x(model: str) -> bool:
    return "-5-5" in model


def cache_minimum(model: str, overrides: Mapping[str, int] | None = None) -> int:
    """Smallest prefix, in tokens, that the model will cache; shorter ones silently aren't.
    `overrides` maps a model id to its minimum (e.g. 512, the figure secondary sources give
    for 5.5 models), for a test or a benchmark that wants the kinder case."""
    if overrides and model in overrides:
        return overrides[model]
    if is_5x(model):
        return UNVERIFIED_CACHE_MINIMUM
    return _CACHE_MINIMUM.get(family(model) or "sonnet", 1024)


def thinks(model: str, body: Mapping[str, Any]) -> bool:
    # 5.5 models cannot turn thinking off (`check_thinking` refuses the request).
    return is_5x(model) or _thinking_type(body) in ("enabled", "adaptive")


def thinking_refusal(model: str, body: Mapping[str, Any]) -> str | None:
    """The 400 message for a thinking setting a 5.5 model refuses, or None if it is fine."""
    kind = _thinking_type(body)
    if not is_5x(model) or kind not in ("disabled", "enabled"):
        return None
    if kind == "disabled":
        return (
            f"thinking.type: thinking cannot be disabled for {model}; "
            "use output_config.effort to control how much it thinks."
        )
    return (
        f"thinking.type.enabled: budget_tokens is not supported for {model}; "
        "use thinking.type 'adaptive' and output_config.effort instead."
    )


def thinking_tokens(model: str, body: Mapping[str, Any], *, seed: str) -> int:
    """Billed thinking tokens: set by effort, ±10% by the prompt's hash, capped by a budget."""
    if not thinks(model, body):
        return 0
    output = body.get("output_config")
    effort = output.get("effort") if isinstance(output, Mapping) else None
    base = THINKING_BY_EFFORT.get(str(effort or DEFAULT_EFFORT), THINKING_BY_EFFORT["medium"])
    jitter = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:2], "big") / 65535
    tokens = round(base * (0.9 + 0.2 * jitter))
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
    return min(tokens, budget) if isinstance(budget, int) and budget > 0 else tokens


def thinking_display_omitted(model: str, body: Mapping[str, Any]) -> bool:
    """Whether thinking text is left empty: the default on 5.5 models, opt-in before."""
    thinking = body.get("thinking")
    display = thinking.get("display") if isinstance(thinking, Mapping) else None
    if display is None:
        return is_5x(model)
    return bool(display == "omitted")


def _thinking_type(body: Mapping[str, Any]) -> str | None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    return str(kind) if kind is not None else None
