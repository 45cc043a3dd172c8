"""Budgets as the core sees them: every model call holds its worst case before it starts.

The run's owner hands the pipeline a `CallBudget`; `Claude` asks it once per request, just
before the request is sent, with the request's worst case (`worst_case_usd`: an upper bound
on its prompt, and its whole `max_tokens` at the model's output price). `hold` returns the
hold's key (None when nothing is held), which the call's `CallRecord` carries so that writing
the record settles the hold to the real cost, or raises `CallRefused` with a reason a person
can read. A hold whose call will not be recorded is given back with `release`. What the hold
is checked against (and atomically, across instances) is the ledger's business, not this
module's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from bot.core.usage import TokenUsage

# Claude's tokenizer gives about 4 characters of English a token and about one token per CJK
# character (3 UTF-8 bytes); counting a token per 2 bytes stays above both. Input is the
# cheap side of a call (output costs 5x), so erring high costs little headroom.
BYTES_PER_TOKEN_BOUND = 2
# The request's framing (roles, the system prompt's wrapping) in tokens, generously.
FRAMING_TOKENS = 64


class CallRefused(Exception):
    """The budget has no room for this call: it was not made. `reason` is for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallBudget(Protocol):
    """Holds one model call's worst case against the budgets that apply to its run."""

    async def hold(self, worst_case_usd: Decimal | None) -> str | None:
        """The hold's key (None: nothing held), or `CallRefused`. `worst_case_usd` None:
        the model is unpriced."""
        ...

    async def release(self, key: str) -> None:
        """Give back a hold whose call will not be recorded."""
        ...


def prompt_tokens_bound(texts: Iterable[str], *, output_config: Mapping[str, Any]) -> int:
    """An upper bound on a request's input tokens: its texts and its output format."""
    size = sum(len(t.encode()) for t in texts) + len(json.dumps(output_config).encode())
    return size // BYTES_PER_TOKEN_BOUND + FRAMING_TOKENS


def worst_usage(prompt_tokens: int, max_tokens: int, *, cached: bool) -> TokenUsage:
    """A request's most expensive usage: the whole prompt billed as a cache write when part
    of it is marked for caching (writes cost more than input), and every output token."""
    if cached:
        return TokenUsage(cache_write_5m_tokens=prompt_tokens, output_tokens=max_tokens)
    return TokenUsage(input_tokens=prompt_tokens, output_tokens=max_tokens)
