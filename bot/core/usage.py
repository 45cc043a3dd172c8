"""Token usage and the record of one model call: the currency shared by pipeline, pricing, ledger.

`TokenUsage` holds the API's usage buckets exactly as billed (uncached input, 5-minute and
1-hour cache writes, cache reads, output including thinking), or, for a call cut off before
the API reported its output, with the output estimated from what had streamed and
`estimated` set; a sum that includes an estimate is itself estimated. `CallRecord` is one model call
as it returned: role, model, usage, request-id, latency, outcome and its exact cost (None when
the model is not in the price table: *unpriced*, never $0) and the key of the budget hold it
was made under.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

# "followup": a call answering `@orchestrate …` in a run's thread (a question answered by the
# review model, or one component redone or added by the examples model). "baseline" and
# "judge": an eval's all-Opus answer and its pairwise judgment (`orchestrate-bot eval`).
Role = Literal["plan", "example", "review", "followup", "baseline", "judge"]
Outcome = Literal["ok", "invalid", "error", "timeout", "cancelled"]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Billable token counts of one call; `output_tokens` includes `thinking_tokens`.
    `estimated`: the output counts are an estimate (the call was cut off mid-stream)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    thinking_tokens: int = 0
    estimated: bool = False

    @property
    def prompt_tokens(self) -> int:
        """Everything the prompt was billed for: what decides Haiku's long-prompt band."""
        return (
            self.input_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.cache_read_tokens
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_write_5m_tokens=self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            thinking_tokens=self.thinking_tokens + other.thinking_tokens,
            estimated=self.estimated or other.estimated,
        )


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One model call that returned (or failed); written to the ledger when it does."""

    role: Role
    model: str
    usage: TokenUsage
    cost_usd: Decimal | None
    latency_s: float
    outcome: Outcome
    request_id: str | None = None
    component_index: int | None = None
    error: str | None = None
    # The budget hold the call was made under (`bot.core.budget`): written with this key,
    # the record settles the hold to the call's real cost.
    key: str | None = None
