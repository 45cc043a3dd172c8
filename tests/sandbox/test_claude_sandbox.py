"""Contract tests: the real `anthropic` SDK against the Claude sandbox over loopback HTTP.

Each test drives `AsyncAnthropic(base_url=sandbox.base_url)` (or raw aiohttp where the SDK
would not send the request) and asserts what the real Messages API would do: content and
usage shapes, the SSE event sequence, structured output, caching, errors, retries and
faults. Latencies are scaled down so the whole module runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import aiohttp
import anthropic
import httpx2
import jsonschema
import pydantic
import pytest
from anthropic import transform_schema
from anthropic.types import MessageParam

from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel, ModelLatency

KEY = "sk-ant-test-key"
FAST = LatencyModel(time_scale=0.001)
EXAMPLE_PROMPT = (
    '<component name="JWT &amp; middleware">Show validating a &lt;token&gt;</component>'
)
PLAN_PROMPT = "<question>How should we add JWT auth to our REST API?</question>"


class PlanComponent(pydantic.BaseModel):
    name: str
    instruction: str


class Plan(pydantic.BaseModel):
    title: str
    essence: str
    components: list[PlanComponent] = pydantic.Field(min_length=2, max_length=6)


class Check(pydantic.BaseModel):
    component: str
    verdict: Literal["ok", "warning", "problem"]
    reason: str


class Review(pydantic.BaseModel):
    checks: list[Check]
    gaps: list[str]
    next_steps: list[str]


class Leaf(pydantic.BaseModel):
    score: float = pydantic.Field(ge=0, le=1)
    tags: list[str] = pydantic.Field(min_length=2, max_length=3)
    code: str = pydantic.Field(max_length=8)


class Tree(pydantic.BaseModel):
    label: str
    depth: int = pydantic.Field(gt=2, lt=5)
    kind: Literal["root", "branch"]
    leaf: Leaf | None = None
    children: list[Tree] = []
    enabled: bool
    note: str | int | None


@pytest.fixture
async def sandbox() -> AsyncIterator[ClaudeSandbox]:
    async with ClaudeSandbox(api_key=KEY, latency=FAST) as claude:
        yield claude


@pytest.fixture
async def client(sandbox: ClaudeSandbox) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=2
    ) as sdk:
        yield sdk


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def example_args(model: str = "claude-haiku-5-5", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 4000, "messages": user(EXAMPLE_PROMPT), **extra}


async def raw_post(
    sandbox: ClaudeSandbox, path: str, body: object, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    """POST outside the SDK, for requests the SDK would refuse to build."""
    sent = {"x-api-key": KEY} if headers is None else dict(headers)
    async with (
        aiohttp.ClientSession() as http,
        http.post(sandbox.base_url + path, json=body, headers=sent) as response,
    ):
        return response.status, await response.json(), response.headers


# -- messages.create -------------------------------------------------------------------


async def test_create_answers_with_thinking_first_then_markdown_example(
    client: anthropic.AsyncAnthropic,
) -> None:
    message = await client.messages.create(**example_args())

    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.signature
    assert text.type == "text"
    assert text.text.startswith("# JWT & middleware\n")
    assert "Show validating a <token>" in text.text
    for heading in ("```python", "## Why this works", "## Integration point", "[sandbox]"):
        assert heading in text.text
    code = text.text.split("```python\n", 1)[1].split("```", 1)[0]
    assert 0 < len(code.strip().splitlines()) <= 15
    assert message.stop_reason == "end_turn"
    assert message._request_id and message._request_id.startswith("req_")


async def test_usage_bills_thinking_as_output_with_all_buckets(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    message = await client.messages.create(**example_args())

    usage = message.usage
    text = next(b.text for b in message.content if b.type == "text")
    assert usage.output_tokens_details is not None
    thinking = usage.output_tokens_details.thinking_tokens
    assert usage.output_tokens == thinking + -(-len(text) // 4)
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert usage.cache_creation is not None and usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert usage.service_tier == "standard"
    assert usage.input_tokens > 0
    assert sandbox.requests[-1].usage == message.usage.model_dump(exclude_none=True)


@pytest.mark.parametrize(
    ("effort", "low", "high"),
    [
        ("low", 100, 140),
        ("medium", 350, 450),
        (None, 350, 450),  # absent: the API's default effort, medium
        ("high", 4500, 5500),
        ("xhigh", 8100, 9900),
        ("max", 14400, 17600),
    ],
)
async def test_thinking_tokens_follow_effort(
    client: anthropic.AsyncAnthropic, effort: str | None, low: int, high: int
) -> None:
    extra = {} if effort is None else {"output_config": {"effort": effort}}
    args = example_args(max_tokens=20000, **extra)  # the SDK streams beyond ~21k
    first = await client.messages.create(**args)
    again = await client.messages.create(**args)

    assert first.usage.output_tokens_details is not None
    assert low <= first.usage.output_tokens_details.thinking_tokens <= high
    assert again.usage == first.usage


@pytest.mark.parametrize("effort", ["high", "xhigh", "max"])
async def test_high_effort_thinking_fills_a_4096_token_limit(
    client: anthropic.AsyncAnthropic, effort: str
) -> None:
    args = example_args("claude-opus-5-5", max_tokens=4096, output_config={"effort": effort})

    message = await client.messages.create(**args)

    assert message.stop_reason == "max_tokens"
    assert [b.type for b in message.content] == ["thinking"]
    assert message.usage.output_tokens == 4096


@pytest.mark.parametrize("model", ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"])
@pytest.mark.parametrize(
    ("thinking", "words"),
    [
        ({"type": "disabled"}, "cannot be disabled"),
        ({"type": "enabled", "budget_tokens": 2048}, "budget_tokens is not supported"),
    ],
)
async def test_5_5_models_refuse_disabled_thinking_and_a_thinking_budget(
    client: anthropic.AsyncAnthropic, model: str, thinking: dict[str, Any], words: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(**example_args(model, thinking=thinking))

    assert caught.value.type == "invalid_request_error"
    assert words in str(caught.value)


async def test_older_models_think_only_when_asked_and_accept_a_budget(
    client: anthropic.AsyncAnthropic,
) -> None:
    budget: dict[str, Any] = {"type": "enabled", "budget_tokens": 2048}
    plain = await client.messages.create(**example_args("claude-sonnet-4-6"))
    disabled = await client.messages.create(
        **example_args("claude-sonnet-4-6", thinking={"type": "disabled"})
    )
    budgeted = await client.messages.create(**example_args("claude-sonnet-4-6", thinking=budget))
    adaptive = await client.messages.create(
        **example_args("claude-haiku-5-5", thinking={"type": "adaptive"})
    )

    assert [b.type for b in plain.content] == [b.type for b in disabled.content] == ["text"]
    assert [b.type for b in budgeted.content] == ["thinking", "text"]
    assert budgeted.content[0].type == "thinking" and budgeted.content[0].thinking
    assert [b.type for b in adaptive.content] == ["thinking", "text"]


async def test_5_5_thinking_text_is_empty_unless_a_summary_is_asked_for(
    client: anthropic.AsyncAnthropic,
) -> None:
    omitted = await client.messages.create(**example_args("claude-opus-5-5"))
    summarized = await client.messages.create(
        **example_args("claude-opus-5-5", thinking={"type": "adaptive", "display": "summarized"})
    )

    hidden, shown = omitted.content[0], summarized.content[0]
    assert hidden.type == shown.type == "thinking"
    assert hidden.thinking == "" and hidden.signature  # the signature still round-trips
    assert shown.thinking.startswith("[sandbox]")
    assert omitted.usage.output_tokens_details is not None
    assert omitted.usage.output_tokens_details.thinking_tokens > 100  # billed all the same


async def test_a_stream_reports_output_usage_only_in_message_delta(
    client: anthropic.AsyncAnthropic,
) -> None:
    stream = await client.messages.create(**example_args(), stream=True)
    events = [event async for event in stream]

    start = next(e for e in events if e.type == "message_start")
    delta = next(e for e in events if e.type == "message_delta")
    assert start.message.usage.output_tokens == 1
    assert start.message.usage.input_tokens > 0  # input and cache counts come first
    details = start.message.usage.output_tokens_details
    assert details is None or details.thinking_tokens == 0
    assert delta.usage.output_tokens > 100
    assert delta.usage.output_tokens_details is not None
    assert delta.usage.output_tokens_details.thinking_tokens > 100
    # No thinking text is streamed when it is omitted: only the signature.
    kinds = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert "thinking_delta" not in kinds and "signature_delta" in kinds


async def test_same_prompt_gets_same_answer_and_another_question_another_plan(
    client: anthropic.AsyncAnthropic,
) -> None:
    def plan(question: str) -> Any:
        prompt = user(f"<question>{question}</question>")
        return client.messages.parse(
            model="claude-opus-5-5", max_tokens=8000, messages=prompt, output_format=Plan
        )

    auth, auth_again = await plan("Add JWT login"), await plan("Add JWT login")
    cache = await plan("Speed up our slow Redis cache")

    assert auth.content == auth_again.content
    assert auth.parsed_output is not None and cache.parsed_output is not None
    assert auth.parsed_output.title.startswith("Authentication")
    assert cache.parsed_output.title.startswith("Caching")


# -- streaming ---------------------------------------------------------------------------


async def test_stream_sends_the_api_event_sequence_with_cumulative_usage(
    client: anthropic.AsyncAnthropic,
) -> None:
    stream = await client.messages.create(**example_args(), stream=True)
    events = [event async for event in stream]

    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    starts = [e for e in events if e.type == "content_block_start"]
    assert [(e.index, e.content_block.type) for e in starts] == [(0, "thinking"), (1, "text")]
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    signature_at = deltas.index("signature_delta")
    assert set(deltas[:signature_at]) <= {"thinking_delta"}
    assert set(deltas[signature_at + 1 :]) == {"text_delta"}
    assert kinds.count("content_block_stop") == 2
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.content == [] and start.message.usage.output_tokens <= 1
    assert delta.delta.stop_reason == "end_turn"
    json_answer = await client.messages.create(**example_args())
    assert delta.usage.output_tokens == json_answer.usage.output_tokens
    assert delta.usage.output_tokens_details == json_answer.usage.output_tokens_details


async def test_stream_final_message_equals_the_json_answer(
    client: anthropic.AsyncAnthropic,
) -> None:
    async with client.messages.stream(**example_args("claude-opus-5-5")) as stream:
        streamed = await stream.get_final_message()
    answered = await client.messages.create(**example_args("claude-opus-5-5"))

    assert [b.model_dump() for b in streamed.content] == [b.model_dump() for b in answered.content]
    assert streamed.usage == answered.usage
    assert streamed.stop_reason == answered.stop_reason


async def test_raw_stream_has_event_lines_a_ping_and_x_api_key_is_accepted(
    sandbox: ClaudeSandbox,
) -> None:
    body = {**example_args(), "stream": True}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sandbox.base_url + "/v1/messages", json=body, headers={"x-api-key": KEY}
        ) as response,
    ):
        raw = (await response.read()).decode()
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_")

    frames = [f for f in raw.split("\n\n") if f.strip()]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert all(f.startswith("event: ") and "\ndata: " in f for f in frames)
    assert "ping" in names and names[0] == "message_start"
    data = [json.loads(f.split("\ndata: ", 1)[1]) for f in frames]
    assert [d["type"] for d in data] == names


async def test_stream_paces_output_after_ttft_and_json_waits_for_the_whole_delay(
    sandbox: ClaudeSandbox,
) -> None:
    # A time to first token well above the headers' time, so that under load (the first
    # call also opens the connection) the two stay apart.
    sandbox.latency = LatencyModel({"haiku": ModelLatency(ttft_s=0.6, tokens_per_s=4000)})
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=0
    ) as sdk:
        started = time.monotonic()
        stream = await sdk.messages.create(**example_args(), stream=True)
        headers_at = time.monotonic()
        arrivals = [time.monotonic() async for _ in stream]
        json_started = time.monotonic()
        answered = await sdk.messages.create(**example_args())
        json_took = time.monotonic() - json_started

    expected = sandbox.latency.delay("claude-haiku-5-5", answered.usage.output_tokens)
    assert headers_at - started < 0.45  # headers come at once; the first token waits
    assert arrivals[0] - started >= 0.59
    assert arrivals[-1] - arrivals[0] >= 0.8 * (expected - 0.6)
    assert json_took >= 0.95 * expected


# -- structured output -------------------------------------------------------------------


async def test_parse_returns_a_plan_from_the_question(client: anthropic.AsyncAnthropic) -> None:
    parsed = await client.messages.parse(
        model="claude-opus-5-5", max_tokens=8000, messages=user(PLAN_PROMPT), output_format=Plan
    )

    plan = parsed.parsed_output
    assert plan is not None
    assert plan.essence.startswith("[sandbox]")
    assert 3 <= len(plan.components) <= 5
    assert len({c.name for c in plan.components}) == len(plan.components)
    assert sum(b.type == "text" for b in parsed.content) == 1


async def test_parse_returns_a_review_with_one_check_per_component(
    client: anthropic.AsyncAnthropic,
) -> None:
    prompt = (
        '<component name="User &amp; model" status="ok">schema</component>\n'
        '<component name="Token issuing" status="failed">timed out</component>\n'
        '<component name="Rate limiting" status="ok">limit</component>'
    )
    parsed = await client.messages.parse(
        model="claude-sonnet-5-5", max_tokens=4000, messages=user(prompt), output_format=Review
    )

    review = parsed.parsed_output
    assert review is not None
    names = [c.component for c in review.checks]
    assert names == ["User & model", "Token issuing", "Rate limiting"]
    assert review.checks[1].verdict == "problem"
    assert 1 <= len(review.gaps) <= 3 and 2 <= len(review.next_steps) <= 3


async def test_parse_returns_a_valid_arbitrary_nested_model(
    client: anthropic.AsyncAnthropic,
) -> None:
    parsed = await client.messages.parse(
        model="claude-haiku-5-5",
        max_tokens=4000,
        messages=user("Describe a tree"),
        output_format=Tree,
    )

    tree = parsed.parsed_output
    assert isinstance(tree, Tree)
    assert tree.leaf is not None and 2 <= len(tree.leaf.tags) <= 3


RAW_SCHEMAS: list[dict[str, Any]] = [
    transform_schema(Tree),
    transform_schema(Plan),
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {"$ref": "#/$defs/Item"},
                "minItems": 1,
                "maxItems": 1,
            },
            "mode": {"const": "fast"},
            "level": {"enum": [1, 2, 3]},
            "nothing": {"type": "null"},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string", "format": "uuid"}]},
            "when": {"type": "string", "format": "date-time"},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
        "required": ["items", "mode", "level", "nothing", "either", "when", "map"],
        "additionalProperties": False,
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "minimum": 10, "maximum": 10},
                    "x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    "s": {"type": "string", "minLength": 30, "maxLength": 40},
                },
                "required": ["n", "x", "s"],
                "additionalProperties": False,
            }
        },
    },
    {"type": "array", "items": {"type": "boolean"}, "minItems": 4},
]


@pytest.mark.parametrize("schema", RAW_SCHEMAS, ids=["tree", "plan", "hand-written", "array"])
async def test_generic_structured_output_validates_against_the_schema(
    client: anthropic.AsyncAnthropic, schema: dict[str, Any]
) -> None:
    message = await client.messages.create(
        model="claude-haiku-5-5",
        max_tokens=4000,
        messages=user("Fill this in"),
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )

    texts = [b.text for b in message.content if b.type == "text"]
    assert len(texts) == 1
    jsonschema.validate(json.loads(texts[0]), schema)


# -- count_tokens and caching ------------------------------------------------------------

LONG_SYSTEM = "You are the review layer. Check every example carefully. " * 120  # ~1,700 tokens


def cached_system(ttl: str | None = None) -> list[dict[str, Any]]:
    marker = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": LONG_SYSTEM, "cache_control": marker}]


async def test_count_tokens_agrees_with_messages_input_tokens(
    client: anthropic.AsyncAnthropic,
) -> None:
    args = example_args(system="Be brief.")
    counted = await client.messages.count_tokens(
        model=args["model"], messages=args["messages"], system="Be brief."
    )
    message = await client.messages.create(**args)

    assert counted.input_tokens == message.usage.input_tokens
    longer = await client.messages.count_tokens(
        model=args["model"], messages=args["messages"], system=LONG_SYSTEM
    )
    assert longer.input_tokens - counted.input_tokens == -(-len(LONG_SYSTEM) // 4) - 3


async def test_second_call_with_the_same_prefix_reads_the_cache(
    client: anthropic.AsyncAnthropic,
) -> None:
    first = await client.messages.create(
        **example_args("claude-sonnet-4-6", system=cached_system())
    )
    second = await client.messages.create(
        **example_args("claude-sonnet-4-6", system=cached_system(), messages=user("Other"))
    )

    prefix = -(-len(LONG_SYSTEM) // 4)
    assert first.usage.cache_creation_input_tokens == prefix
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == prefix
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == prefix
    assert second.usage.cache_creation_input_tokens == 0
    counted = await client.messages.count_tokens(
        model="claude-sonnet-4-6", system=LONG_SYSTEM, messages=user("Other")
    )
    assert second.usage.input_tokens == counted.input_tokens - prefix


async def test_one_hour_ttl_writes_to_the_one_hour_bucket(
    client: anthropic.AsyncAnthropic,
) -> None:
    message = await client.messages.create(
        **example_args("claude-sonnet-4-6", system=cached_system("1h"))
    )

    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens > 0
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0


async def test_prefix_below_the_model_minimum_is_never_cached(
    client: anthropic.AsyncAnthropic,
) -> None:
    # ~1,700 tokens: enough for Sonnet 4.x (1,024) but below Haiku's 4,096, and below the
    # 4,096 assumed for every 5.5 model (their minimums are unverified: the stricter case).
    for model in ("claude-haiku-4-5", "claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"):
        for _ in range(2):
            message = await client.messages.create(**example_args(model, system=cached_system()))
            assert message.usage.cache_creation_input_tokens == 0
            assert message.usage.cache_read_input_tokens == 0
    cached = await client.messages.create(
        **example_args("claude-sonnet-4-6", system=cached_system())
    )
    assert cached.usage.cache_creation_input_tokens > 1024


async def test_top_level_cache_control_caches_up_to_the_last_block(
    client: anthropic.AsyncAnthropic,
) -> None:
    args = example_args("claude-sonnet-4-6", system=LONG_SYSTEM)
    marker = {"cache_control": {"type": "ephemeral"}}
    first = await client.messages.create(**args, extra_body=marker)
    second = await client.messages.create(**args, extra_body=marker)

    assert first.usage.cache_creation_input_tokens > 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.input_tokens == 0


async def test_parallel_calls_fired_together_each_write_the_cache(sandbox: ClaudeSandbox) -> None:
    sandbox.latency = LatencyModel({"sonnet": ModelLatency(ttft_s=0.2, tokens_per_s=20000)})
    args = example_args("claude-sonnet-4-6", system=cached_system())
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=0
    ) as sdk:
        together = await asyncio.gather(*(sdk.messages.create(**args) for _ in range(2)))
        after = await sdk.messages.create(**args)

    assert [m.usage.cache_read_input_tokens for m in together] == [0, 0]
    assert all(m.usage.cache_creation_input_tokens > 0 for m in together)
    assert after.usage.cache_read_input_tokens == together[0].usage.cache_creation_input_tokens


# -- errors and validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "wording"),
    [
        ({"extra_body": {"temperature": 0.2}}, "temperature"),
        ({"extra_body": {"top_p": 0.9}}, "top_p"),
        ({"extra_body": {"top_k": 5}}, "top_k"),
        ({"max_tokens": 0}, "greater than or equal to 1"),
        ({"tool_choice": {"type": "any"}}, "tool_choice forces tool use"),
        ({"tool_choice": {"type": "tool", "name": "pick"}}, "tool_choice forces tool use"),
        (
            {"messages": [*user("Hi"), {"role": "assistant", "content": "{"}]},
            "prefill",
        ),
    ],
    ids=["temperature", "top_p", "top_k", "max_tokens", "any", "tool", "prefill"],
)
@pytest.mark.parametrize("model", ["claude-opus-5-5", "claude-sonnet-5-5"])
async def test_invalid_requests_get_400_with_the_api_wording(
    client: anthropic.AsyncAnthropic,
    sandbox: ClaudeSandbox,
    model: str,
    change: dict[str, Any],
    wording: str,
) -> None:
    tools = [{"name": "pick", "description": "Pick one", "input_schema": {"type": "object"}}]
    args = {**example_args(model), "tools": tools, **change}

    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(**args)

    assert caught.value.type == "invalid_request_error"
    assert caught.value.api_message is not None and wording in caught.value.api_message
    assert caught.value.request_id == sandbox.requests[-1].request_id
    assert len(sandbox.messages()) == 1  # a 400 is not retried


async def test_forced_tool_choice_and_prefill_are_accepted_by_older_models(
    client: anthropic.AsyncAnthropic,
) -> None:
    tools: Any = [{"name": "pick", "description": "Pick", "input_schema": {"type": "object"}}]
    forced = await client.messages.create(
        **example_args("claude-haiku-5-5"), tools=tools, tool_choice={"type": "any"}
    )
    prefilled = await client.messages.create(
        **example_args(
            "claude-sonnet-4-6", messages=[*user("Hi"), {"role": "assistant", "content": "{"}]
        )
    )

    assert forced.stop_reason == prefilled.stop_reason == "end_turn"


@pytest.mark.parametrize("missing", ["model", "max_tokens", "messages"])
async def test_missing_required_field_is_a_400_naming_it(
    sandbox: ClaudeSandbox, missing: str
) -> None:
    body = {k: v for k, v in example_args().items() if k != missing}

    status, error, headers = await raw_post(sandbox, "/v1/messages", body)

    assert status == 400
    assert error == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": f"{missing}: Field required"},
        "request_id": headers["request-id"],
    }


async def test_unknown_model_is_404_but_sandbox_ids_are_accepted(
    client: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(**example_args("claude-opus-9"))
    sandbox_model = await client.messages.create(**example_args("claude-sandbox-tiny"))

    assert caught.value.type == "not_found_error"
    assert sandbox_model.model == "claude-sandbox-tiny"


async def test_wrong_key_is_401_authentication_error(sandbox: ClaudeSandbox) -> None:
    async with anthropic.AsyncAnthropic(
        api_key="sk-ant-wrong", base_url=sandbox.base_url, max_retries=0
    ) as sdk:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await sdk.messages.create(**example_args())
    status, _, _ = await raw_post(sandbox, "/v1/messages", example_args(), headers={})

    assert caught.value.type == "authentication_error"
    assert caught.value.request_id is not None
    assert status == 401


async def test_unknown_route_answers_in_the_api_error_shape(sandbox: ClaudeSandbox) -> None:
    status, error, headers = await raw_post(sandbox, "/v1/nothing", {})

    assert status == 404
    assert error["type"] == "error" and error["error"]["type"] == "not_found_error"
    assert error["request_id"] == headers["request-id"]


# -- faults and retries ------------------------------------------------------------------


async def test_single_rate_limit_is_retried_after_retry_after(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    sandbox.add_rule(fault="rate_limit", times=1, retry_after_s=0.3)

    message = await client.messages.create(**example_args())

    first, second = sandbox.messages()
    assert (first.status, first.error_type) == (429, "rate_limit_error")
    assert second.status == 200 and message.stop_reason == "end_turn"
    assert first.finished is not None and second.started - first.finished >= 0.25


async def test_single_overload_is_retried_and_succeeds(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    sandbox.add_rule(fault="overloaded", times=1, retry_after_s=0.01)

    await client.messages.create(**example_args())

    assert [r.status for r in sandbox.messages()] == [529, 200]


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("overloaded", anthropic.OverloadedError, 529),
        ("server_error", anthropic.InternalServerError, 500),
    ],
)
async def test_persistent_server_fault_raises_after_the_sdk_retries(
    client: anthropic.AsyncAnthropic,
    sandbox: ClaudeSandbox,
    fault: Any,
    error: type[anthropic.APIStatusError],
    status: int,
) -> None:
    sandbox.add_rule(fault=fault, retry_after_s=0.01)

    with pytest.raises(error) as caught:
        await client.messages.create(**example_args())

    assert caught.value.status_code == status
    assert [r.status for r in sandbox.messages()] == [status] * 3


async def test_stall_times_out_the_client(sandbox: ClaudeSandbox) -> None:
    sandbox.add_rule(fault="stall")
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=0, timeout=0.3
    ) as sdk:
        started = time.monotonic()
        with pytest.raises(anthropic.APITimeoutError):
            await sdk.messages.create(**example_args())

    assert 0.25 <= time.monotonic() - started < 2
    record = sandbox.requests[-1]
    for _ in range(100):  # the handler ends when the server notices the client left
        if record.finished is not None:
            break
        await asyncio.sleep(0.01)
    assert record.status is None and record.finished is not None


async def test_stream_error_raises_mid_stream_and_is_529_without_streaming(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    sandbox.add_rule(fault="stream_error", times=1)
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(**example_args()) as stream:
            received += [event.type async for event in stream]
    sandbox.add_rule(fault="stream_error", retry_after_s=0.01)
    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(**example_args())

    assert caught.value.type == "overloaded_error"
    assert len(sandbox.messages()) == 1 + 3  # the stream error itself is not retried
    assert sandbox.requests[0].error_type == "overloaded_error"


async def test_disconnect_cuts_a_stream_half_way_and_the_sdk_sees_a_broken_connection(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    sandbox.add_rule(fault="disconnect", times=1)
    received: list[str] = []
    # anthropic ≤ 2.16 lets the transport error through; 2.17 wraps it (its cause).
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)) as caught:
        async with client.messages.stream(**example_args()) as stream:
            async for event in stream:
                received.append(event.type)
    broken = caught.value
    if isinstance(broken, anthropic.APIConnectionError):
        broken = broken.__cause__
    assert isinstance(broken, httpx2.RemoteProtocolError)
    whole = await client.messages.create(**example_args())

    assert "message_start" in received and "message_delta" not in received
    record = sandbox.messages()[0]
    assert record.error_type == "connection_cut" and record.status == 200
    # The stand-in says how much output it had generated before the cut: half.
    assert record.streamed_tokens == whole.usage.output_tokens / 2
    assert len(sandbox.messages()) == 2  # a stream broken mid-way is not retried


async def test_disconnect_without_streaming_drops_the_connection_and_the_sdk_retries(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    sandbox.add_rule(fault="disconnect", times=1)

    message = await client.messages.create(**example_args())

    assert message.stop_reason == "end_turn"
    assert [r.error_type for r in sandbox.messages()] == ["connection_cut", None]


async def test_invalid_output_fails_pydantic_parsing(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    sandbox.add_rule(role="plan", fault="invalid_output")

    with pytest.raises(pydantic.ValidationError):
        await client.messages.parse(
            model="claude-opus-5-5", max_tokens=8000, messages=user(PLAN_PROMPT), output_format=Plan
        )


async def test_refusal_stops_with_refusal_and_little_text(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    sandbox.add_rule(contains="JWT", fault="refusal")

    message = await client.messages.create(**example_args("claude-sonnet-4-6"))

    assert message.stop_reason == "refusal"
    assert message.stop_details is not None and message.stop_details.type == "refusal"
    assert message.usage.output_tokens < 30


async def test_max_tokens_fault_and_real_limit_truncate_with_max_tokens(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    full = await client.messages.create(**example_args("claude-haiku-4-5"))
    sandbox.add_rule(fault="max_tokens", times=1)
    cut = await client.messages.create(**example_args("claude-haiku-4-5"))
    limited = await client.messages.create(**example_args("claude-haiku-4-5", max_tokens=40))
    thinking_only = await client.messages.create(**example_args("claude-opus-5-5", max_tokens=50))

    assert cut.stop_reason == limited.stop_reason == thinking_only.stop_reason == "max_tokens"
    assert cut.usage.output_tokens < full.usage.output_tokens
    assert limited.usage.output_tokens == 40
    assert [b.type for b in thinking_only.content] == ["thinking"]
    assert thinking_only.usage.output_tokens == 50


# -- rules, latency and the control API --------------------------------------------------


def test_latency_model_is_deterministic_and_scaled() -> None:
    latency = LatencyModel({"claude-haiku-5-5": ModelLatency(1.0, 100.0)}, time_scale=0.5)

    assert latency.delay("claude-haiku-5-5", 200) == latency.delay("claude-haiku-5-5", 200)
    assert latency.delay("claude-haiku-5-5", 200) == pytest.approx((1.0 + 2.0) * 0.5)
    assert LatencyModel().delay("claude-opus-5-5", 100) == pytest.approx(2.0 + 2.0)
    assert LatencyModel().delay("claude-sonnet-4-6", 80) == pytest.approx(1.0 + 1.0)
    assert LatencyModel().delay("claude-haiku-4-5", 180) == pytest.approx(0.4 + 1.0)
    by_family = LatencyModel({"opus": ModelLatency(0.1, 10.0)})
    assert by_family.delay("claude-opus-4-5", 10) == pytest.approx(1.1)


async def test_delay_rules_stagger_parallel_calls(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    for name, delay in (("slow", 0.45), ("middle", 0.25), ("fast", 0.05)):
        sandbox.add_rule(contains=name, delay_s=delay)
    prompts = [f'<component name="{n}">Show it</component>' for n in ("slow", "middle", "fast")]

    await asyncio.gather(
        *(client.messages.create(**example_args(messages=user(p))) for p in prompts)
    )

    durations: dict[str, float] = {}
    for record in sandbox.messages():
        assert record.finished is not None
        durations[record.body["messages"][0]["content"]] = record.finished - record.started
    slow, middle, fast = (durations[p] for p in prompts)
    assert fast < middle < slow
    assert slow > 3 * fast


async def test_first_matching_rule_applies_and_times_runs_out(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    once = sandbox.add_rule(role="example", model="haiku", fault="refusal", times=1)
    sandbox.add_rule(role="plan", fault="refusal")

    refused = await client.messages.create(**example_args())
    answered = await client.messages.create(**example_args())
    other_model = await client.messages.create(**example_args("claude-sonnet-5-5"))

    assert refused.stop_reason == "refusal" and once.applied == 1 and not once.active
    assert answered.stop_reason == other_model.stop_reason == "end_turn"


async def test_control_api_adds_rules_lists_requests_and_clears(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox
) -> None:
    async with aiohttp.ClientSession(base_url=sandbox.base_url) as http:
        async with http.post("/_sandbox/rules", json={"fault": "refusal", "times": 1}) as added:
            assert added.status == 201
        async with http.post("/_sandbox/rules", json={"fault": "nope"}) as rejected:
            assert rejected.status == 400
        refused = await client.messages.create(**example_args())
        async with http.get("/_sandbox/requests") as listed:
            summary = await listed.json()
        sandbox.add_rule(fault="refusal")
        async with http.delete("/_sandbox/rules") as cleared:
            assert cleared.status == 204
    answered = await client.messages.create(**example_args())

    assert refused.stop_reason == "refusal" and answered.stop_reason == "end_turn"
    assert summary[-1]["fault"] == "refusal" and summary[-1]["status"] == 200
    assert summary[-1]["request_id"] == refused._request_id


async def test_a_text_rule_replaces_the_answer_and_bills_its_length(
    sandbox: ClaudeSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.add_rule(role="example", text="# Replaced\n\n" + "word " * 400, times=1)

    replaced = await client.messages.create(
        model="claude-haiku-5-5", max_tokens=8192, messages=user("Illustrate X")
    )
    normal = await client.messages.create(
        model="claude-haiku-5-5", max_tokens=8192, messages=user("Illustrate X")
    )

    text = "".join(b.text for b in replaced.content if b.type == "text")
    assert text.startswith("# Replaced") and text.count("word") == 400
    assert replaced.usage.output_tokens > normal.usage.output_tokens
    assert "# Replaced" not in "".join(b.text for b in normal.content if b.type == "text")


@pytest.mark.parametrize(
    ("model", "ceiling"),
    [("claude-opus-5-5", 128_000), ("claude-haiku-5-5", 128_000), ("claude-sonnet-4-6", 64_000)],
)
async def test_each_model_refuses_max_tokens_above_its_own_maximum_as_models_reports_it(
    client: anthropic.AsyncAnthropic, sandbox: ClaudeSandbox, model: str, ceiling: int
) -> None:
    assert (await client.models.retrieve(model)).max_tokens == ceiling
    async with client.messages.stream(**example_args(model, max_tokens=ceiling)) as stream:
        assert (await stream.get_final_message()).stop_reason == "end_turn"
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(**example_args(model, max_tokens=ceiling + 1), stream=True)
    assert caught.value.api_message == (
        f"max_tokens: {ceiling + 1} > {ceiling}, which is the maximum allowed number of output "
        f"tokens for {model}"
    )
