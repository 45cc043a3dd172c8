"""The Claude client: the only module that imports `anthropic`.

Three calls, one per role (plan, example, review), each making exactly one API request and
returning a `Reply`: the typed answer (or the reason there is none) and the `CallRecord`
with the real usage, cost, latency and request-id. Every request is streamed, so a call
that times out, is cancelled or loses its connection mid-answer still reports its input
and cache counts, and its output estimated from what had streamed (`bot.core.estimate`),
marked as an estimate. Each call's `max_tokens` follows its role's effort, since 5.5 models
always think and thinking counts toward the limit.
Structured answers use `output_config.format` (never forced `tool_choice`, which Opus and
Sonnet 5.5 reject) and are validated here, not by the SDK, so that an invalid answer keeps
its usage. Retries are the SDK's own (`max_retries`); nothing here retries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

import anthropic

# The SDK's HTTP client: its transport errors surface unwrapped once a stream has begun.
import httpx2
from anthropic.lib.streaming import ParsedMessageStreamEvent
from anthropic.types import Message, MessageParam, RawContentBlockDelta, TextBlockParam, Usage
from pydantic import BaseModel, Field, ValidationError

from bot.core import judging, prompts
from bot.core.budget import CallBudget, prompt_tokens_bound, worst_usage
from bot.core.estimate import StreamTally
from bot.core.models import Check, Component, Review, Strategy
from bot.core.usage import CallRecord, Outcome, Role, TokenUsage
from bot.settings import Settings, SettingsError
from bot.startup import Unreachable

T = TypeVar("T")
PriceFn = Callable[[str, TokenUsage], Decimal | None]
CancelSink = Callable[[CallRecord], None]
# Told the whole answer text so far, each time more of it streams in.
TextSink = Callable[[str], Awaitable[None]]

# 5.5 models always think, thinking counts toward max_tokens, and effort sets how much they
# think (thousands of tokens from `high` up): each call's limit is its visible answer's
# room plus the thinking room of its effort.
VISIBLE_TOKENS: dict[Role, int] = {
    "plan": 1024,  # a few hundred tokens of JSON
    "example": 5120,  # asks for ~800-1,200 tokens; room for outliers
    "review": 1024,  # ~400-600 tokens of JSON
    "followup": 1024,  # a short answer (~250 words)
    "baseline": 8192,  # an eval's all-Opus answer: strategy, examples and review in one
    "judge": 1024,  # an eval's verdict: eight scores, a winner and a sentence (JSON)
}
THINKING_ROOM = {"low": 3072, "medium": 6144, "high": 12288, "xhigh": 20480, "max": 28672}
# A model's own output maximum comes from `GET /v1/models/{id}` (`max_tokens`; 128,000 for the
# 5.5 models) at start; until then, or when the API does not say, the smallest maximum among
# current models: a request above its model's maximum is refused outright.
MAX_OUTPUT_TOKENS = 32000
# Prompt caching silently does nothing below these prefix sizes (the 4.x models' figures).
# The 5.5 models' minimums are unpublished; secondary sources give 512. The examples wait for
# a first call to write the cache from there: marked but fired at once, every parallel call
# pays the write (+8-19% on the examples), warmed they save 24-53% for about one time to
# first token (BENCHMARKS.md, prompt caching); below it nothing can be cached, so none waits.
CACHE_MIN_TOKENS = {"opus": 4096, "haiku": 4096, "sonnet": 1024}
UNVERIFIED_CACHE_MIN_TOKENS = 512
MIN_COMPONENTS, MAX_COMPONENTS = 2, 6


class ComponentOut(BaseModel):
    name: str = Field(description="2-5 words")
    instruction: str = Field(description="what the example must show")


class PlanOut(BaseModel):
    title: str
    essence: str = Field(description="the core idea in 2-3 sentences")
    components: list[ComponentOut] = Field(description="2 to 6 components")


class CheckOut(BaseModel):
    component: str
    verdict: Literal["ok", "warning", "problem"]
    reason: str


class ReviewOut(BaseModel):
    checks: list[CheckOut]
    gaps: list[str]
    next_steps: list[str]


class ScoresOut(BaseModel):
    correct: int = Field(ge=1, le=5)
    complete: int = Field(ge=1, le=5)
    actionable: int = Field(ge=1, le=5)
    concise: int = Field(ge=1, le=5)


class JudgmentOut(BaseModel):
    a: ScoresOut = Field(description="answer A's scores, 1-5 each")
    b: ScoresOut = Field(description="answer B's scores, 1-5 each")
    winner: Literal["A", "B", "tie"]
    reason: str = Field(description="one sentence")


def _schema_format(model: type[BaseModel]) -> dict[str, Any]:
    return {"type": "json_schema", "schema": anthropic.transform_schema(model)}


PLAN_FORMAT = _schema_format(PlanOut)
REVIEW_FORMAT = _schema_format(ReviewOut)
JUDGE_FORMAT = _schema_format(JudgmentOut)


@dataclass(frozen=True, slots=True)
class Reply(Generic[T]):
    """One call's outcome: `value` when usable, else `problem` says why in plain words;
    `cut_off`: the answer stopped at its `max_tokens`."""

    call: CallRecord
    value: T | None
    problem: str | None = None
    cut_off: bool = False


def max_tokens_for(role: Role, effort: str, *, ceiling: int = MAX_OUTPUT_TOKENS) -> int:
    """The output limit of a `role` call at `effort`: its answer plus its thinking, within
    the model's own maximum `ceiling`."""
    return min(VISIBLE_TOKENS[role] + THINKING_ROOM[effort], ceiling)


def repair_max_tokens(limit: int, *, ceiling: int = MAX_OUTPUT_TOKENS) -> int:
    """A repair of an answer cut off at `limit` gets twice the room (up to the model's
    maximum): asked again with the same limit, the model would most likely be cut off again."""
    return min(2 * limit, ceiling)


def efforts(settings: Settings) -> dict[Role, str]:
    """Each role's effort; a follow-up answer is the review model's, at the review's."""
    return {
        "plan": settings.strategy_effort,
        "example": settings.examples_effort,
        "review": settings.review_effort,
        "followup": settings.review_effort,
    }


class Claude:
    """Role calls over one `AsyncAnthropic`; owns that client and closes it."""

    def __init__(
        self, client: anthropic.AsyncAnthropic, *, settings: Settings, price: PriceFn
    ) -> None:
        self._client = client
        self._settings = settings
        self._price = price
        self._ceilings: dict[str, int] = {}  # each model's own output maximum, once known

    @classmethod
    def from_settings(cls, settings: Settings, *, price: PriceFn) -> Claude:
        client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,
            max_retries=settings.anthropic_max_retries,
        )
        return cls(client, settings=settings, price=price)

    async def aclose(self) -> None:
        await self._client.close()

    async def check_models(self) -> None:
        """Confirm the key and the three configured models with `GET /v1/models/{id}`
        (authenticated, free): a refusal raises `SettingsError` naming the variable to fix;
        a network error or a 5xx raises `Unreachable`, to be waited out."""
        s = self._settings
        for variable, model in (
            ("STRATEGY_MODEL", s.strategy_model),
            ("EXAMPLES_MODEL", s.examples_model),
            ("REVIEW_MODEL", s.review_model),
        ):
            await self._check_model(variable, model)

    async def _check_model(self, variable: str, model: str) -> None:
        try:
            info = await self._client.models.retrieve(model)
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            raise SettingsError(
                f"ANTHROPIC_API_KEY was refused by the Claude API ({exc.status_code}): "
                "set a valid key from the Anthropic Console."
            ) from None
        except anthropic.NotFoundError:
            raise SettingsError(
                f'{variable} names a model the Claude API does not have, "{model}": '
                "set a model id that GET /v1/models lists."
            ) from None
        except anthropic.APIConnectionError as exc:
            raise Unreachable(f"the Claude API could not be reached ({exc})") from None
        except anthropic.APIStatusError as exc:
            if exc.status_code in (408, 429) or exc.status_code >= 500:
                raise Unreachable(f"the Claude API answered {exc.status_code}") from None
            raise SettingsError(
                f"{variable}: the Claude API refused to look up {model!r} ({exc.status_code})."
            ) from None
        if info.lifecycle == "retired":
            raise SettingsError(
                f'{variable} names a retired model, "{model}": set a current model id.'
            )
        if info.max_tokens:
            self._ceilings[model] = info.max_tokens

    def ceiling(self, model: str) -> int:
        """`model`'s output maximum as the API reported it at start (or the conservative
        default before `check_models`, or when the API did not say)."""
        return self._ceilings.get(model, MAX_OUTPUT_TOKENS)

    def limit(self, role: Role, model: str, effort: str) -> int:
        """The `max_tokens` a `role` call on `model` at `effort` is sent with."""
        return max_tokens_for(role, effort, ceiling=self.ceiling(model))

    async def plan(
        self,
        question: str,
        *,
        repairing: Reply[Strategy] | None = None,
        thread: str | None = None,
        on_cancel: CancelSink | None = None,
        on_text: TextSink | None = None,
        budget: CallBudget | None = None,
    ) -> Reply[Strategy]:
        """Ask the strategy model for a brief strategy; `repairing` (an unusable answer)
        turns it into a repair that says what was wrong, with more room if it was cut off;
        `thread` is a discussion (`prompts.thread_context`) the strategy must build on.
        `on_text` is told the answer so far as it streams (for showing it being written)."""
        effort, model = self._settings.strategy_effort, self._settings.strategy_model
        limit = self.limit("plan", model, effort)
        if repairing is not None and repairing.cut_off:
            limit = repair_max_tokens(limit, ceiling=self.ceiling(model))
        problem = repairing.problem if repairing is not None else None
        message, call = await self._call(
            "plan",
            model,
            system=prompts.PLAN_SYSTEM,
            content=[_text(prompts.plan_user(question, problem=problem, thread=thread))],
            max_tokens=limit,
            output_config={"effort": effort, "format": PLAN_FORMAT},
            on_cancel=on_cancel,
            on_text=on_text,
            budget=budget,
        )
        return _structured(call, message, PlanOut, _to_strategy)

    async def example(
        self,
        question: str,
        strategy: Strategy,
        component: Component,
        *,
        index: int,
        cache: bool = False,
        started: asyncio.Event | None = None,
        on_cancel: CancelSink | None = None,
        budget: CallBudget | None = None,
    ) -> Reply[str]:
        """Illustrate one component. `cache` marks the shared prefix for prompt caching;
        `started` is set once the API has begun answering (the prefix is then cached)."""
        context = _text(prompts.example_context(question, strategy))
        if cache:
            context["cache_control"] = {"type": "ephemeral"}
        model, effort = self._settings.examples_model, self._settings.examples_effort
        message, call = await self._call(
            "example",
            model,
            system=prompts.EXAMPLE_SYSTEM,
            content=[context, _text(prompts.example_user(component))],
            max_tokens=self.limit("example", model, effort),
            output_config={"effort": effort},
            index=index,
            started=started,
            on_cancel=on_cancel,
            budget=budget,
        )
        return _markdown(call, message)

    async def review(
        self,
        question: str,
        strategy: Strategy,
        outcomes: list[prompts.ExampleOutcome],
        *,
        on_cancel: CancelSink | None = None,
        budget: CallBudget | None = None,
    ) -> Reply[Review]:
        model, effort = self._settings.review_model, self._settings.review_effort
        message, call = await self._call(
            "review",
            model,
            system=prompts.REVIEW_SYSTEM,
            content=[
                _text(
                    prompts.review_user(
                        question,
                        strategy,
                        outcomes,
                        code_only=self._settings.review_reads == "code",
                    )
                )
            ],
            max_tokens=self.limit("review", model, effort),
            output_config={"effort": effort, "format": REVIEW_FORMAT},
            on_cancel=on_cancel,
            budget=budget,
        )
        return _structured(call, message, ReviewOut, _to_review)

    async def followup_answer(
        self,
        thread: str,
        request: str,
        *,
        on_cancel: CancelSink | None = None,
        budget: CallBudget | None = None,
    ) -> Reply[str]:
        """The review model answers a follow-up (a question, a critique) about a thread."""
        model, effort = self._settings.review_model, self._settings.review_effort
        message, call = await self._call(
            "followup",
            model,
            system=prompts.FOLLOWUP_SYSTEM,
            content=[_text(thread), _text(prompts.followup_user(request))],
            max_tokens=self.limit("followup", model, effort),
            output_config={"effort": effort},
            on_cancel=on_cancel,
            budget=budget,
        )
        return _markdown(call, message)

    async def followup_example(
        self,
        thread: str,
        component: Component,
        *,
        index: int | None,
        on_cancel: CancelSink | None = None,
        budget: CallBudget | None = None,
    ) -> Reply[str]:
        """The examples model writes one component (redone or added) with the thread as
        context; `index` is the component's 0-based place, None for an added one."""
        model, effort = self._settings.examples_model, self._settings.examples_effort
        message, call = await self._call(
            "followup",
            model,
            system=prompts.EXAMPLE_SYSTEM,
            content=[_text(thread), _text(prompts.example_user(component))],
            max_tokens=self.limit("example", model, effort),
            output_config={"effort": effort},
            index=index,
            on_cancel=on_cancel,
            budget=budget,
        )
        return _markdown(call, message)

    async def baseline(self, question: str, *, on_cancel: CancelSink | None = None) -> Reply[str]:
        """An eval's all-Opus arm: the strategy model answers alone, at the strategy's effort,
        with the strategy, the examples and the review in one Markdown answer."""
        effort, model = self._settings.strategy_effort, self._settings.strategy_model
        message, call = await self._call(
            "baseline",
            model,
            system=judging.BASELINE_SYSTEM,
            content=[_text(judging.baseline_user(question))],
            max_tokens=self.limit("baseline", model, effort),
            output_config={"effort": effort},
            on_cancel=on_cancel,
        )
        return _markdown(call, message)

    async def judge(
        self,
        question: str,
        first: str,
        second: str,
        *,
        model: str,
        effort: str = "low",
        on_cancel: CancelSink | None = None,
    ) -> Reply[judging.Judgment]:
        """An eval's pairwise judgment of `first` (A) against `second` (B) by `model`."""
        message, call = await self._call(
            "judge",
            model,
            system=judging.JUDGE_SYSTEM,
            content=[_text(judging.judge_user(question, first, second))],
            max_tokens=self.limit("judge", model, effort),
            output_config={"effort": effort, "format": JUDGE_FORMAT},
            on_cancel=on_cancel,
        )
        return _structured(call, message, JudgmentOut, _to_judgment)

    def cacheable(self, question: str, strategy: Strategy) -> bool:
        """Whether the examples should wait for a first call to write the cache of their
        shared prefix (which is marked whatever its length: marking a prefix below the
        model's minimum is harmless): where the prefix may reach the model's minimum (512
        assumed for 5.5 models). A typical question's prefix does not (~400 tokens), so its
        examples start together; a long question's does, and waiting one time to first
        token saves 24-53% of the examples' cost where marking alone would add 8-19%
        (tests/benchmarks/bench_cache.py)."""
        prefix = prompts.EXAMPLE_SYSTEM + prompts.example_context(question, strategy)
        minimum = _cache_minimum(self._settings.examples_model)
        # ~4 characters a token; erring low only means not waiting (at worst each call pays
        # the write of a prefix just over the minimum).
        return minimum is not None and len(prefix) // 4 >= minimum

    async def _call(
        self,
        role: Role,
        model: str,
        *,
        system: str,
        content: list[TextBlockParam],
        max_tokens: int,
        output_config: dict[str, Any],
        index: int | None = None,
        started: asyncio.Event | None = None,
        on_cancel: CancelSink | None = None,
        on_text: TextSink | None = None,
        budget: CallBudget | None = None,
    ) -> tuple[Message | None, CallRecord]:
        """One request, held against `budget` first (`CallRefused` when it has no room):
        the record it returns (or hands `on_cancel`) carries the hold's key."""
        key = None
        if budget is not None:
            texts = [system, *(block["text"] for block in content)]
            prompt = prompt_tokens_bound(texts, output_config=output_config)
            cached = any("cache_control" in block for block in content)
            worst = self._price(model, worst_usage(prompt, max_tokens, cached=cached))
            key = await budget.hold(worst)
        try:
            message, record = await self._request(
                role, model, system=system, content=content, max_tokens=max_tokens,
                output_config=output_config, index=index, started=started,
                on_cancel=on_cancel, on_text=on_text, key=key,
            )  # fmt: skip
        except Exception:
            if budget is not None and key is not None:
                await budget.release(key)  # a bug: no record will settle the hold
            raise
        return message, record

    async def _request(
        self,
        role: Role,
        model: str,
        *,
        system: str,
        content: list[TextBlockParam],
        max_tokens: int,
        output_config: dict[str, Any],
        index: int | None,
        started: asyncio.Event | None,
        on_cancel: CancelSink | None,
        on_text: TextSink | None,
        key: str | None,
    ) -> tuple[Message | None, CallRecord]:
        clock = time.monotonic()
        progress = _Progress(model=model, max_tokens=max_tokens)
        outcome: Outcome = "ok"
        error: str | None = None
        message: Message | None = None
        try:
            async with asyncio.timeout(self._settings.call_timeout_s):
                message = await self._stream(
                    model,
                    system=system,
                    content=content,
                    max_tokens=max_tokens,
                    output_config=output_config,
                    progress=progress,
                    started=started,
                    on_text=on_text,
                )
        except TimeoutError:
            outcome, error = "timeout", f"no answer within {self._settings.call_timeout_s:g} s"
        except anthropic.APIStatusError as exc:
            outcome, error = "error", _status_problem(exc)
        except (anthropic.APIConnectionError, httpx2.TransportError, _StreamCutOff) as exc:
            # Which class a broken connection arrives as depends on the SDK's version
            # (2.17 wraps a mid-stream cut in APIConnectionError, 2.16 let the transport
            # error through): what matters is whether the answer had begun.
            outcome, error = _broken(exc, begun=progress.begun)
        except asyncio.CancelledError:
            # Tokens already counted were spent: hand the partial record to the caller's
            # sink (synchronously: nothing may be awaited once cancelled) and go on unwinding.
            if on_cancel is not None:
                cut = self._record(
                    role, model, progress=progress, clock=clock, outcome="cancelled", index=index
                )
                on_cancel(replace(cut, key=key))
            raise
        finally:
            if started is not None:
                started.set()  # never leave a waiter hanging on a failed call
        record = self._record(
            role, model, progress=progress, clock=clock, outcome=outcome, error=error, index=index
        )
        return message, replace(record, key=key)

    async def _stream(
        self,
        model: str,
        *,
        system: str,
        content: list[TextBlockParam],
        max_tokens: int,
        output_config: dict[str, Any],
        progress: _Progress,
        started: asyncio.Event | None,
        on_text: TextSink | None = None,
    ) -> Message:
        async with self._client.messages.stream(
            model=model,
            max_tokens=max_tokens,
            system=system,
            messages=[_user_turn(content)],
            output_config=output_config,  # type: ignore[arg-type]
        ) as stream:
            progress.request_id = stream.request_id
            async for event in stream:
                progress.observe(event, at=time.monotonic())
                if event.type == "message_start" and started is not None:
                    started.set()
                elif event.type == "text" and on_text is not None:
                    await on_text(event.snapshot)
            if not progress.complete:
                # The connection closed cleanly but early: the SDK ends the iteration
                # without an error, and its snapshot would pass for a whole answer.
                raise _StreamCutOff
            final = await stream.get_final_message()
        progress.usage = final.usage
        return final

    def _record(
        self,
        role: Role,
        model: str,
        *,
        progress: _Progress,
        clock: float,
        outcome: Outcome,
        error: str | None = None,
        index: int | None,
    ) -> CallRecord:
        usage = progress.token_usage(now=time.monotonic())
        return CallRecord(
            role=role,
            model=model,
            usage=usage,
            cost_usd=self._price(model, usage),
            latency_s=time.monotonic() - clock,
            outcome=outcome,
            request_id=progress.request_id,
            component_index=index,
            error=error,
        )


class _StreamCutOff(Exception):
    """The stream ended without `message_stop`."""


def _broken(exc: Exception, *, begun: bool) -> tuple[Outcome, str]:
    """Name a connection that failed by what happened: before any event (the SDK has
    already retried it) or mid-answer (never retried: the call fails with what it had)."""
    timed_out = isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException)
    if begun:
        if timed_out:
            return "timeout", "the Claude API stopped sending mid-answer"
        return "error", "the connection to the Claude API broke mid-answer"
    if timed_out:
        return "timeout", "the Claude API did not answer in time"
    return "error", "the Claude API could not be reached"


@dataclass(slots=True)
class _Progress:
    """What a streamed call has reported so far, so a cut-off call still has its usage:
    the input and cache counts from `message_start`, the output from `message_delta` once
    it comes, and until then an estimate from the content streamed."""

    model: str
    max_tokens: int
    usage: Usage | None = None
    output_tokens: int | None = None
    thinking_tokens: int | None = None
    request_id: str | None = None
    complete: bool = False
    begun: bool = False  # any event arrived: a break from here on is mid-answer
    tally: StreamTally = field(default_factory=StreamTally)

    def observe(self, event: ParsedMessageStreamEvent[Any], *, at: float) -> None:
        self.begun = True
        if event.type == "message_start":
            self.usage = event.message.usage
        elif event.type == "content_block_start":
            kind = event.content_block.type
            self.tally.started(kind if kind in ("thinking", "text") else "other", at=at)
        elif event.type == "content_block_delta":
            self.tally.delta(_delta_chars(event.delta), at=at)
        elif event.type == "content_block_stop":
            self.tally.stopped(at=at)
        elif event.type == "message_delta":
            self.output_tokens = event.usage.output_tokens
            details = event.usage.output_tokens_details
            self.thinking_tokens = details.thinking_tokens if details else None
        elif event.type == "message_stop":
            self.complete = True

    def token_usage(self, *, now: float) -> TokenUsage:
        exact = to_token_usage(self.usage, output_tokens=self.output_tokens)
        if self.thinking_tokens is not None:
            # `message_start` reports no thinking; a call cut off after `message_delta`
            # keeps the count that event gave.
            exact = replace(exact, thinking_tokens=max(exact.thinking_tokens, self.thinking_tokens))
        if self.usage is None or self.output_tokens is not None:
            return exact
        guess = self.tally.estimate(now=now, model=self.model, limit=self.max_tokens)
        return replace(
            exact,
            output_tokens=guess.output_tokens,
            thinking_tokens=guess.thinking_tokens,
            estimated=True,
        )


def _delta_chars(delta: RawContentBlockDelta) -> int:
    if delta.type == "text_delta":
        return len(delta.text)
    if delta.type == "input_json_delta":
        return len(delta.partial_json)
    if delta.type == "thinking_delta":
        return len(delta.thinking)
    return 0  # signatures and citations are not output the model wrote


def to_token_usage(usage: Usage | None, *, output_tokens: int | None = None) -> TokenUsage:
    """The API's usage object as billable buckets (cache writes split by TTL)."""
    if usage is None:
        return TokenUsage()
    written = usage.cache_creation_input_tokens or 0
    one_hour = usage.cache_creation.ephemeral_1h_input_tokens if usage.cache_creation else 0
    details = usage.output_tokens_details
    return TokenUsage(
        input_tokens=usage.input_tokens,
        output_tokens=max(usage.output_tokens, output_tokens or 0),
        cache_write_5m_tokens=written - one_hour,
        cache_write_1h_tokens=one_hour,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        thinking_tokens=details.thinking_tokens if details else 0,
    )


def _user_turn(content: list[TextBlockParam]) -> MessageParam:
    return {"role": "user", "content": content}


def _text(text: str) -> TextBlockParam:
    return {"type": "text", "text": text}


def _text_of(message: Message) -> str:
    # 5.x models answer with thinking blocks first: select by type, never content[0].
    return "".join(block.text for block in message.content if block.type == "text")


def _markdown(call: CallRecord, message: Message | None) -> Reply[str]:
    """A free-text answer: its text, or why there is none (the call keeps its usage)."""
    if message is None:
        return Reply(call, None, call.error)
    text = _text_of(message).strip()
    problem = _stop_problem(message) or (None if text else "the answer was empty")
    if problem:
        return Reply(_invalid(call, problem, message), None, problem, _at_limit(message))
    return Reply(call, text)


def _stop_problem(message: Message) -> str | None:
    if message.stop_reason == "refusal":
        return "the model declined to answer this request"
    if message.stop_reason == "max_tokens":
        return "the answer was cut off at the token limit"
    if message.stop_reason == "model_context_window_exceeded":
        # The API stops generating once prompt and answer fill the context window: what
        # came back is cut short, not an answer.
        return "the answer was cut off: the request filled the model's context window"
    return None


def _invalid(call: CallRecord, problem: str, message: Message) -> CallRecord:
    # A full context window is no answer to repair: asking again would overflow again.
    full = message.stop_reason == "model_context_window_exceeded"
    return replace(call, outcome="error" if full else "invalid", error=problem)


M = TypeVar("M", bound=BaseModel)


def _structured(
    call: CallRecord,
    message: Message | None,
    schema: type[M],
    convert: Callable[[M], tuple[T | None, str | None]],
) -> Reply[T]:
    if message is None:
        return Reply(call, None, call.error)
    problem = _stop_problem(message)
    if problem is None:
        try:
            value, problem = convert(schema.model_validate_json(_text_of(message)))
        except ValidationError:
            problem = "the answer did not match the expected format"
        if problem is None:
            return Reply(call, value)
    return Reply(_invalid(call, problem, message), None, problem, _at_limit(message))


def _at_limit(message: Message) -> bool:
    return message.stop_reason == "max_tokens"


def _to_strategy(out: PlanOut) -> tuple[Strategy | None, str | None]:
    components = tuple(
        Component(c.name.strip(), c.instruction.strip())
        for c in out.components
        if c.name.strip() and c.instruction.strip()
    )
    if not MIN_COMPONENTS <= len(components) <= MAX_COMPONENTS:
        count = len(components)
        return None, f"it named {count} components instead of {MIN_COMPONENTS}-{MAX_COMPONENTS}"
    if not out.essence.strip():
        return None, "the core idea was empty"
    return Strategy(out.title.strip() or "Strategy", out.essence.strip(), components), None


def _to_review(out: ReviewOut) -> tuple[Review | None, str | None]:
    checks = tuple(Check(c.component, c.verdict, c.reason) for c in out.checks)
    return Review(checks, tuple(out.gaps), tuple(out.next_steps)), None


def _to_judgment(out: JudgmentOut) -> tuple[judging.Judgment | None, str | None]:
    def scores(s: ScoresOut) -> judging.Scores:
        return judging.Scores(s.correct, s.complete, s.actionable, s.concise)

    return judging.Judgment(scores(out.a), scores(out.b), out.winner, out.reason.strip()), None


def _cache_minimum(model: str) -> int | None:
    if "-5-5" in model:
        return UNVERIFIED_CACHE_MIN_TOKENS
    return next((n for family, n in CACHE_MIN_TOKENS.items() if family in model), None)


def _status_problem(exc: anthropic.APIStatusError) -> str:
    if exc.status_code == 429:
        return "the Claude API rate limit was hit; try again in a minute"
    if exc.status_code in (500, 502, 503, 529):
        return "the Claude API is overloaded or failing; try again shortly"
    if exc.status_code in (401, 403):
        return "the Claude API refused the key; check ANTHROPIC_API_KEY"
    if exc.status_code == 404:
        return "the model was not found; check the *_MODEL settings"
    return f"the Claude API rejected the request ({exc.status_code})"
