"""A Slack thread as a model reads it: who said what, cut to a token budget, and follow-ups.

`ThreadMessage` is one message already decoded to plain text with its author's label; `fit`
keeps a thread inside a token budget by dropping the oldest messages first (the thread's
first message, which states the question or the run's strategy, is always kept; the run's
own messages and the people's are cut separately, so a long discussion cannot push the run
out of its own context) and says how many it dropped. `route` decides what a follow-up in a
run's thread asks for, by rules, so classifying costs nothing: one component redone or added
goes to the examples model, a re-plan to the strategy model, anything else (a question, a
critique, "what are we missing?") to the review model. Nothing here knows Slack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ~4 characters a token in English; count 3 so a budget errs on the short side.
CHARS_PER_TOKEN = 3
# The run's own messages (examples, review) may take this share of a thread's budget; the
# people's discussion gets the rest, and whatever the run leaves unused.
RUN_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """One message of a thread: `author` is a label (a user id, or the bot's name)."""

    author: str
    text: str
    by_orchestrate: bool = False


@dataclass(frozen=True, slots=True)
class Discussion:
    """The messages a model will read, oldest first, and how many older ones were left out."""

    messages: tuple[ThreadMessage, ...]
    omitted: int = 0

    @property
    def people(self) -> int:
        return sum(1 for m in self.messages if not m.by_orchestrate)


def tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def fit(messages: list[ThreadMessage], *, max_tokens: int) -> Discussion:
    """What fits in `max_tokens`: the first message (the question or the run's strategy),
    then orchestrate's own messages (the run) in up to `RUN_SHARE` of the budget and the
    people's messages in the rest, each newest first, so the oldest are dropped first."""
    if not messages:
        return Discussion(())
    first, rest = messages[0], messages[1:]
    budget = max_tokens - tokens(first.text)
    run_budget = int(budget * RUN_SHARE)
    run = _newest([m for m in rest if m.by_orchestrate], run_budget)
    people_budget = budget - sum(tokens(m.text) for m in run)
    people = _newest([m for m in rest if not m.by_orchestrate], people_budget)
    kept = set(map(id, run + people))
    chosen = tuple(m for m in rest if id(m) in kept)
    return Discussion((first, *chosen), omitted=len(rest) - len(chosen))


def _newest(messages: list[ThreadMessage], budget: int) -> list[ThreadMessage]:
    kept: list[ThreadMessage] = []
    for message in reversed(messages):
        cost = tokens(message.text)
        if cost > budget:
            break
        kept.append(message)
        budget -= cost
    return kept


@dataclass(frozen=True, slots=True)
class Redo:
    """Redo or change component `number` (1-based) as `request` says."""

    number: int
    request: str


@dataclass(frozen=True, slots=True)
class Add:
    """Add a component the run did not have."""

    request: str


@dataclass(frozen=True, slots=True)
class Ask:
    """A question, critique or "what are we missing?": the review model answers."""

    request: str


@dataclass(frozen=True, slots=True)
class Rethink:
    """Re-plan the whole approach: a new strategy, its examples and review."""

    request: str


FollowUp = Redo | Add | Ask | Rethink

_RETHINK = re.compile(
    r"\b(re-?think|re-?plan|start (over|again)|from scratch|whole approach|different approach|"
    r"another approach|new (strategy|plan|approach))\b",
    re.IGNORECASE,
)
_NUMBERED = re.compile(
    r"\b(?:(?:component|example|part|step|section)\s*(?:number\s*|no\.?\s*|#\s*)?"
    r"|(?:redo|rewrite|change|rework|regenerate|update|port|translate|convert)\s+(?:#\s*)?)"
    r"(\d{1,2})\b",
    re.IGNORECASE,
)
_ADD = re.compile(
    r"\badd\b.{0,40}\b(component|example|part|section|one)\b|\b(another|one more|extra) "
    r"(component|example|part|section)\b",
    re.IGNORECASE,
)


def route(request: str, *, components: int) -> FollowUp:
    """What `request` asks for; a number beyond the run's `components` is not a redo."""
    if _RETHINK.search(request):
        return Rethink(request)
    numbered = _NUMBERED.search(request)
    if numbered and 1 <= int(numbered.group(1)) <= components:
        return Redo(int(numbered.group(1)), request)
    if _ADD.search(request):
        return Add(request)
    return Ask(request)
