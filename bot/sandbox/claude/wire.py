"""The Messages API wire format for the Claude sandbox: validation in, messages and SSE out.

`validate` rejects a request body the way the API does (400 `invalid_request_error`,
404 `not_found_error`) by raising `ApiError`. `compose` turns a valid request into a
`Reply` (content blocks, stop reason, usage), applying thinking, `max_tokens`
truncation and the content-shaping faults. `message_json` renders a reply as the JSON
answer and `sse_events` as the stream the API sends, each event with the output tokens
it carries so the server can pace it; an SDK accumulating those events rebuilds exactly
the JSON answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.sandbox.claude import content
from bot.sandbox.claude.models import (
    NO_FORCED_TOOLS,
    is_5x,
    is_known,
    max_output_tokens,
    thinking_display_omitted,
    thinking_refusal,
    thinking_tokens,
)
from bot.sandbox.claude.usage import CacheUsage, count_text, usage_json

_SAMPLING = ("temperature", "top_p", "top_k")
_CHUNK_CHARS = 24  # about six tokens per delta, close to what the API sends


class ApiError(Exception):
    """An API error response: HTTP status, `error.type`, message and extra headers."""

    def __init__(
        self, status: int, kind: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = dict(headers or {})


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


def validate(body: object) -> Mapping[str, Any]:
    """The body as a mapping, or `ApiError` with the API's status, type and wording."""
    if not isinstance(body, Mapping):
        raise invalid("Request body must be a JSON object.")
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            raise invalid(f"{field}: Field required")
    for field in _SAMPLING:
        if field in body:
            raise invalid(f"{field}: Extra inputs are not permitted")
    _check_max_tokens(body)
    _check_messages(body["messages"])
    _check_output_format(body)
    model = str(body["model"])
    if not is_known(model):
        raise ApiError(404, "not_found_error", f"model: {model}")
    if body["max_tokens"] > (ceiling := max_output_tokens(model)):
        raise invalid(
            f"max_tokens: {body['max_tokens']} > {ceiling}, which is the maximum allowed "
            f"number of output tokens for {model}"
        )
    _check_model_rules(model, body)
    return body


def _check_max_tokens(body: Mapping[str, Any]) -> None:
    value = body["max_tokens"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid("max_tokens: Input should be a valid integer")
    if value < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
    if isinstance(budget, int) and budget >= value:
        raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")


def _check_messages(messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: List should have at least 1 item after validation, not 0")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise invalid(f"messages.{index}.content: Field required")
    if messages[0].get("role") != "user":
        raise invalid('messages: first message must use the "user" role')


def _check_output_format(body: Mapping[str, Any]) -> None:
    output = body.get("output_config")
    fmt = output.get("format") if isinstance(output, Mapping) else None
    if fmt is None:
        return
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        raise invalid("output_config.format.type: Input should be 'json_schema'")
    if not isinstance(fmt.get("schema"), Mapping):
        raise invalid("output_config.format.schema: Field required")


def _check_model_rules(model: str, body: Mapping[str, Any]) -> None:
    choice = body.get("tool_choice")
    forced = isinstance(choice, Mapping) and choice.get("type") in ("any", "tool")
    if forced and model in NO_FORCED_TOOLS:
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
    refusal = thinking_refusal(model, body)
    if refusal is not None:
        raise invalid(refusal)
    if is_5x(model) and body["messages"][-1].get("role") == "assistant":
        raise invalid(
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message."
        )


@dataclass(frozen=True, slots=True)
class Block:
    """One content block and the output tokens it bills (thinking: the full reasoning)."""

    kind: str
    text: str
    tokens: int
    signature: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    model: str
    blocks: tuple[Block, ...]
    stop_reason: str
    stop_details: dict[str, Any] | None
    usage: dict[str, Any]

    @property
    def output_tokens(self) -> int:
        return int(self.usage["output_tokens"])


def compose(
    body: Mapping[str, Any],
    *,
    role: content.Role,
    fault: str | None,
    seed: str,
    cache: CacheUsage,
    text: str | None = None,
) -> Reply:
    """The full answer to a valid request, before any pacing; `text` replaces the answer."""
    model = str(body["model"])
    thinking = _thinking_block(model, body, role=role, seed=seed)
    answer, stop, details = _answer(body, role=role, fault=fault, seed=seed)
    if text is not None:
        answer, stop, details = text, "end_turn", None
    text = answer
    blocks, stop = _fit(thinking, text, limit=int(body["max_tokens"]), stop=stop)
    spent = sum(b.tokens for b in blocks)
    usage = usage_json(
        cache, output_tokens=spent, thinking_tokens=thinking.tokens if thinking else 0
    )
    if thinking and blocks[0].tokens < thinking.tokens:  # thinking itself was cut short
        usage["output_tokens_details"]["thinking_tokens"] = blocks[0].tokens
    return Reply(model, tuple(blocks), stop, details, usage)


def _thinking_block(
    model: str, body: Mapping[str, Any], *, role: content.Role, seed: str
) -> Block | None:
    tokens = thinking_tokens(model, body, seed=seed)
    if not tokens:
        return None
    summary = "" if thinking_display_omitted(model, body) else content.thinking_summary(role, body)
    return Block("thinking", summary, tokens, content.signature(seed))


def _answer(
    body: Mapping[str, Any], *, role: content.Role, fault: str | None, seed: str
) -> tuple[str, str, dict[str, Any] | None]:
    if fault == "refusal":
        details = {"type": "refusal", "category": None, "explanation": None}
        return content.REFUSAL_TEXT, "refusal", details
    if fault == "invalid_output":
        return content.invalid_answer(role, body, seed=seed), "end_turn", None
    text = content.answer(role, body, seed=seed)
    if fault == "max_tokens":
        return text[: max(1, len(text) // 2)], "max_tokens", None
    if fault == "context_window":  # prompt and answer filled the model's context window
        return text[: max(1, len(text) // 2)], "model_context_window_exceeded", None
    return text, "end_turn", None


def _fit(thinking: Block | None, text: str, *, limit: int, stop: str) -> tuple[list[Block], str]:
    """Cut thinking, then text, to `max_tokens`; stop_reason becomes max_tokens if cut."""
    blocks = [thinking] if thinking else []
    used = thinking.tokens if thinking else 0
    if used >= limit and thinking:
        return [replace(thinking, tokens=limit)], "max_tokens"
    room = limit - used
    if count_text(text) > room:
        text, stop = text[: room * 4], "max_tokens"
    return [*blocks, Block("text", text, count_text(text))], stop


def message_json(reply: Reply, *, message_id: str) -> dict[str, Any]:
    return {
        **_envelope(reply, message_id=message_id),
        "content": [_block_json(b) for b in reply.blocks],
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "stop_details": reply.stop_details,
        "usage": reply.usage,
    }


def _envelope(reply: Reply, *, message_id: str) -> dict[str, Any]:
    return {"id": message_id, "type": "message", "role": "assistant", "model": reply.model}


def _block_json(block: Block) -> dict[str, Any]:
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    return {"type": "text", "text": block.text}


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event and the output tokens generated before it goes out."""

    name: str
    data: dict[str, Any]
    tokens: float = 0.0

    def encode(self) -> bytes:
        return f"event: {self.name}\ndata: {json.dumps(self.data, ensure_ascii=False)}\n\n".encode()


def sse_events(reply: Reply, *, message_id: str) -> list[SseEvent]:
    """The stream for `reply`: start, blocks with deltas, a ping, cumulative delta, stop."""
    start_usage = {**reply.usage, "output_tokens": 1}
    start_usage["output_tokens_details"] = {"thinking_tokens": 0}
    start = {
        **_envelope(reply, message_id=message_id),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [SseEvent("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(reply.blocks):
        events += _block_events(index, block)
    # The API sends a keep-alive ping right after the first content_block_start.
    events.insert(2, SseEvent("ping", {"type": "ping"}))
    final_usage = {
        k: v for k, v in reply.usage.items() if k not in ("cache_creation", "service_tier")
    }
    delta = {"stop_reason": reply.stop_reason, "stop_sequence": None}
    delta["stop_details"] = reply.stop_details  # type: ignore[assignment]
    events.append(
        SseEvent("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage})
    )
    events.append(SseEvent("message_stop", {"type": "message_stop"}))
    return events


def _block_events(index: int, block: Block) -> list[SseEvent]:
    empty = _block_json(replace(block, text="", signature=""))
    events = [
        SseEvent("content_block_start", _at(index, "content_block_start", content_block=empty))
    ]
    pieces = [block.text[i : i + _CHUNK_CHARS] for i in range(0, len(block.text), _CHUNK_CHARS)]
    per_piece = block.tokens / max(len(pieces), 1)
    delta_type, field = (
        ("thinking_delta", "thinking") if block.kind == "thinking" else ("text_delta", "text")
    )
    if block.kind == "text":
        pieces = pieces or [""]
    for piece in pieces:
        delta = {"type": delta_type, field: piece}
        events.append(
            SseEvent(
                "content_block_delta", _at(index, "content_block_delta", delta=delta), per_piece
            )
        )
    if block.kind == "thinking":
        # With the thinking text omitted no thinking_delta is sent: the signature goes out
        # once the (hidden) reasoning is done, so it carries that reasoning's time.
        hidden = 0.0 if pieces else float(block.tokens)
        delta = {"type": "signature_delta", "signature": block.signature}
        events.append(
            SseEvent("content_block_delta", _at(index, "content_block_delta", delta=delta), hidden)
        )
    events.append(SseEvent("content_block_stop", _at(index, "content_block_stop")))
    return events


def _at(index: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "index": index, **fields}


def stream_error_events(reply: Reply, *, message_id: str) -> list[SseEvent]:
    """The start of a stream that then fails with `event: error` (overloaded)."""
    head = [e for e in sse_events(reply, message_id=message_id) if e.name != "message_stop"][:5]
    failure = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return [*head, SseEvent("error", failure)]
