"""Knobs and records of the Claude sandbox: latency, fault rules and recorded requests.

`LatencyModel` turns a model id and an output size into a deterministic delay;
`Rule` says which calls get a fault or a fixed delay and how many times; a
`RecordedRequest` is one call as the sandbox saw it, for tests to assert on. Plain data
with no I/O, so the server (`claude.py`) and the control API share one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from bot.sandbox.claude.models import family

Fault = Literal[
    "rate_limit",
    "overloaded",
    "server_error",
    "stall",
    "stream_error",
    "disconnect",
    "disconnect_after_delta",
    "invalid_output",
    "refusal",
    "max_tokens",
    "context_window",
]
FAULTS: frozenset[str] = frozenset(get_args(Fault))


@dataclass(frozen=True, slots=True)
class ModelLatency:
    """Time to first token and output speed of one model."""

    ttft_s: float
    tokens_per_s: float


_DEFAULT_LATENCY = {
    "opus": ModelLatency(2.0, 50.0),
    "sonnet": ModelLatency(1.0, 80.0),
    "haiku": ModelLatency(0.4, 180.0),
}


class LatencyModel:
    """Deterministic delay: (ttft + output_tokens / tokens_per_s) × time_scale, no jitter.

    `per_model` keys are model ids or family names ("opus"); an exact id wins, then the
    first key contained in the id, then the family default (Sonnet's for unknown ids).
    """

    def __init__(
        self, per_model: Mapping[str, ModelLatency] | None = None, *, time_scale: float = 1.0
    ) -> None:
        self.per_model = dict(per_model or {})
        self.time_scale = time_scale

    def for_model(self, model: str) -> ModelLatency:
        if model in self.per_model:
            return self.per_model[model]
        named = next((v for k, v in self.per_model.items() if k in model), None)
        return named or _DEFAULT_LATENCY[family(model) or "sonnet"]

    def ttft(self, model: str) -> float:
        return self.for_model(model).ttft_s * self.time_scale

    def per_token(self, model: str) -> float:
        return self.time_scale / self.for_model(model).tokens_per_s

    def delay(self, model: str, output_tokens: int) -> float:
        return self.ttft(model) + output_tokens * self.per_token(model)


@dataclass(slots=True, kw_only=True)
class Rule:
    """A fault and/or delay for matching calls; `remaining` None means forever."""

    id: int
    role: str | None = None
    model: str | None = None
    contains: str | None = None
    fault: Fault | None = None
    delay_s: float | None = None
    remaining: int | None = None
    retry_after_s: float | None = None
    text: str | None = None  # the answer's visible text, instead of the generated one
    applied: int = 0

    @property
    def active(self) -> bool:
        return self.remaining is None or self.remaining > 0

    def matches(self, *, role: str, model: str, text: str) -> bool:
        """`model` matches as a substring, so "haiku" covers every Haiku id."""
        return (
            self.active
            and (self.role is None or self.role == role)
            and (self.model is None or self.model in model)
            and (self.contains is None or self.contains in text)
        )

    def consume(self) -> None:
        self.applied += 1
        if self.remaining is not None:
            self.remaining -= 1


@dataclass(slots=True)
class RecordedRequest:
    """One call as the sandbox saw it; times are `time.monotonic()` seconds."""

    endpoint: str
    request_id: str
    started: float
    body: Any = None
    role: str | None = None
    model: str | None = None
    streamed: bool = False
    status: int | None = None
    error_type: str | None = None
    fault: str | None = None
    usage: dict[str, Any] | None = None
    streamed_tokens: float = 0.0  # output tokens generated before the last event sent
    first_token: float | None = None
    finished: float | None = None

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "body"}
        data["duration_s"] = None if self.finished is None else self.finished - self.started
        return data


_RULE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "role": str,
    "model": str,
    "contains": str,
    "fault": str,
    "delay_s": (int, float),
    "times": int,
    "retry_after_s": (int, float),
    "text": str,
}


def rule_arguments(payload: object) -> dict[str, Any]:
    """add_rule's keyword arguments from control-API JSON, type-checked."""
    if not isinstance(payload, dict):
        raise TypeError("expected a JSON object of add_rule's arguments")
    unknown = set(payload) - set(_RULE_FIELDS)
    if unknown:
        raise TypeError(f"unknown fields {sorted(unknown)}; use {sorted(_RULE_FIELDS)}")
    for name, value in payload.items():
        wrong = not isinstance(value, _RULE_FIELDS[name]) or isinstance(value, bool)
        if value is not None and wrong:
            raise TypeError(f"{name} has the wrong type: {value!r}")
    return dict(payload)
