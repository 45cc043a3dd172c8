"""`GET /v1/models` and `GET /v1/models/{id}`: the models the stand-in answers for.

Shaped as the API answers (the `anthropic` SDK's `ModelInfo` and its cursor page): `type`,
`id`, `display_name`, `created_at`, `lifecycle`, `max_input_tokens`, `max_tokens`; a list
is newest first, `limit` 1 to 1000 (default 20), paged with `after_id` / `before_id`. An id
it does not know is a 404 `not_found_error`. Test-only ids (`claude-sandbox-…`) can be
looked up but are not listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.sandbox.claude.models import (
    KNOWN_MODELS,
    SANDBOX_MODEL_PREFIX,
    is_known,
    max_output_tokens,
)
from bot.sandbox.claude.wire import ApiError, invalid

# Release dates (RFC 3339) for the catalogue's order; newest first, as the API lists.
_RELEASED = {
    "claude-opus-5-5": "2026-09-24T00:00:00Z",
    "claude-sonnet-5-5": "2026-09-24T00:00:00Z",
    "claude-haiku-5-5": "2026-10-15T00:00:00Z",
    "claude-sonnet-4-6": "2026-02-17T00:00:00Z",
    "claude-opus-4-5": "2025-11-24T00:00:00Z",
    "claude-haiku-4-5": "2025-10-15T00:00:00Z",
    "claude-sonnet-4-5": "2025-09-29T00:00:00Z",
}
_DEPRECATED = {"claude-sonnet-4-5": "2026-05-29T00:00:00Z"}
_EPOCH = "1970-01-01T00:00:00Z"  # what the API gives when a release date is unknown


def model_info(model_id: str) -> dict[str, Any]:
    """One model's `ModelInfo`, or a 404 like the API's for an id it does not have."""
    if not is_known(model_id):
        raise ApiError(404, "not_found_error", f"model: {model_id}")
    deprecated = _DEPRECATED.get(model_id)
    return {
        "type": "model",
        "id": model_id,
        "display_name": _display_name(model_id),
        "created_at": _RELEASED.get(model_id, _EPOCH),
        "lifecycle": "deprecated" if deprecated else "active",
        "deprecated_at": deprecated,
        "retires_at": None,
        "max_input_tokens": 200_000,
        "max_tokens": max_output_tokens(model_id),
    }


def model_page(query: Mapping[str, str]) -> dict[str, Any]:
    """A page of the catalogue, newest first, with the cursor fields the SDK pages by."""
    limit = _limit(query.get("limit"))
    ids = sorted(KNOWN_MODELS, key=lambda m: (_RELEASED.get(m, _EPOCH), m), reverse=True)
    if after := query.get("after_id"):
        ids = ids[_index(ids, after) + 1 :]
    elif before := query.get("before_id"):
        ids = ids[: _index(ids, before)][-limit:]
    page, has_more = ids[:limit], len(ids) > limit
    return {
        "data": [model_info(m) for m in page],
        "has_more": has_more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise invalid("limit: Input should be less than or equal to 1000 and at least 1")
    return int(raw)


def _index(ids: list[str], cursor: str) -> int:
    if cursor not in ids:
        raise invalid(f"invalid cursor: {cursor}")
    return ids.index(cursor)


def _display_name(model_id: str) -> str:
    if model_id.startswith(SANDBOX_MODEL_PREFIX):
        return model_id
    words = model_id.removeprefix("claude-").split("-")
    return "Claude " + words[0].capitalize() + " " + ".".join(words[1:])
