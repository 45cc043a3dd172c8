"""JSON-schema instances for the Claude sandbox's structured output.

`conform(hint, schema, seed=...)` returns a value that is valid for a JSON schema of the
kind pydantic emits and `anthropic.transform_schema` rewrites (object / array / string /
integer / number / boolean / null, enum, const, anyOf, allOf, $ref into $defs), keeping
the parts of `hint` that already fit and inventing the rest deterministically from `seed`.
`transform_schema` moves constraints the API does not enforce (maxItems, maxLength,
minimum, …) into a trailing `{key: value, …}` in the description; a real model usually
follows them and pydantic enforces them on parse, so they are honoured here too.
`break_instance` turns a valid instance into one the schema rejects, for the
`invalid_output` fault. Patterns (`pattern`) are not honoured.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]

# Beyond this depth a recursive schema gets only what it requires (empty lists, nulls).
_MAX_DEPTH = 6
_CONSTRAINT_KEYS = frozenset(
    {
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    }
)
_TRAILING_BRACES = re.compile(r"\{([^{}]*)\}\s*$")
_FORMAT_VALUES = {
    "date-time": "2026-11-02T09:30:00Z",
    "date": "2026-11-02",
    "time": "09:30:00",
    "duration": "PT15M",
    "email": "sandbox@example.com",
    "hostname": "sandbox.example.com",
    "uri": "https://example.com/sandbox",
    "ipv4": "192.0.2.10",
    "ipv6": "2001:db8::10",
}


def conform(hint: object, schema: Schema, *, seed: str) -> Any:
    """A value valid for `schema`, reusing `hint` wherever it already fits."""
    return _Builder(schema, seed).value(hint, schema, path="$", stack=())


def break_instance(value: object, schema: Schema) -> object:
    """A value the schema rejects: a required field dropped, else a value of the wrong type."""
    root = _resolve(schema, schema)
    required = root.get("required") or []
    if isinstance(value, dict) and required:
        return {k: v for k, v in value.items() if k != required[0]}
    return {"sandbox_invalid": True} if _types(root) != {"object"} else ["sandbox_invalid"]


def constraints(schema: Schema) -> dict[str, float]:
    """Numeric constraints, from the schema's keywords or its description's `{k: v}` tail."""
    found: dict[str, float] = {}
    match = _TRAILING_BRACES.search(str(schema.get("description") or ""))
    if match:
        for part in match.group(1).split(","):
            key, _, raw = part.partition(":")
            number = _number(raw.strip())
            if key.strip() in _CONSTRAINT_KEYS and number is not None:
                found[key.strip()] = number
    for key in _CONSTRAINT_KEYS & schema.keys():
        if isinstance(schema[key], int | float) and not isinstance(schema[key], bool):
            found[key] = float(schema[key])
    return found


def _number(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def _resolve(node: Schema, root: Schema) -> Schema:
    """Follow `$ref`s (local `#/...` pointers only) and merge a lone-`allOf` wrapper."""
    seen = 0
    while "$ref" in node and seen < 32:
        target: Any = root
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node, seen = target, seen + 1
    if "allOf" in node:
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"]:
            _merge_into(merged, _resolve(part, root))
        return merged
    return node


def _merge_into(merged: dict[str, Any], part: Schema) -> None:
    for key, val in part.items():
        if key == "properties":
            merged["properties"] = {**merged.get("properties", {}), **val}
        elif key == "required":
            merged["required"] = [*merged.get("required", []), *val]
        else:
            merged.setdefault(key, val)


def _types(node: Schema) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, list):
        return {str(t) for t in declared}
    return {str(declared)} if declared else set()


def _digest(seed: str, path: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{path}".encode()).digest()[:8], "big")


class _Builder:
    """One walk over a schema; holds the root (for `$ref`) and the seed."""

    def __init__(self, root: Schema, seed: str) -> None:
        self.root = root
        self.seed = seed

    def value(self, hint: object, node: Schema, *, path: str, stack: tuple[str, ...]) -> Any:
        if "$ref" in node:
            stack = (*stack, str(node["$ref"]))
        node = _resolve(node, self.root)
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return self._enum(hint, list(node["enum"]), path)
        if isinstance(node.get("anyOf"), list) and node["anyOf"]:
            return self._any_of(hint, node["anyOf"], path=path, stack=stack)
        kind = self._pick_type(hint, node, stack)
        return self._typed(kind, hint, node, path=path, stack=stack)

    def _typed(self, kind: str, hint: object, node: Schema, **at: Any) -> Any:
        if kind == "object":
            return self._object(hint, node, **at)
        if kind == "array":
            return self._array(hint, node, **at)
        if kind in ("integer", "number"):
            return self._number(hint, node, integer=kind == "integer", path=at["path"])
        if kind == "boolean":
            return hint if isinstance(hint, bool) else _digest(self.seed, at["path"]) % 2 == 0
        if kind == "null":
            return None
        return self._string(hint, node, path=at["path"])

    def _pick_type(self, hint: object, node: Schema, stack: tuple[str, ...]) -> str:
        kinds = _types(node)
        if not kinds:
            return "object" if "properties" in node else "string"
        for kind in sorted(kinds):
            if _fits_type(hint, kind):
                return kind
        non_null = sorted(kinds - {"null"})
        deep = len(stack) > _MAX_DEPTH
        return "null" if (deep and "null" in kinds) or not non_null else non_null[0]

    def _enum(self, hint: object, options: list[Any], path: str) -> Any:
        if hint in options:
            return hint
        return options[_digest(self.seed, path) % len(options)]

    def _any_of(self, hint: object, branches: list[Schema], **at: Any) -> Any:
        pairs = [(b, _resolve(b, self.root)) for b in branches]
        chosen = next((b for b, r in pairs if _hint_fits(hint, r)), None)
        if chosen is None:
            stack: tuple[str, ...] = at["stack"]
            recursive = any(str(b.get("$ref")) in stack for b in branches)
            nulls = [b for b, r in pairs if _types(r) == {"null"}]
            others = [b for b, r in pairs if _types(r) != {"null"}]
            # A recursive branch or a deep position ends the recursion with null when allowed.
            prefer_null = recursive or len(stack) > _MAX_DEPTH
            chosen = (nulls or others)[0] if prefer_null else (others or nulls)[0]
        return self.value(hint, chosen, **at)

    def _object(self, hint: object, node: Schema, *, path: str, stack: tuple[str, ...]) -> Any:
        given = hint if isinstance(hint, dict) else {}
        props: Mapping[str, Schema] = node.get("properties") or {}
        result = {
            name: self.value(given.get(name), sub, path=f"{path}.{name}", stack=stack)
            for name, sub in props.items()
        }
        extra = node.get("additionalProperties")
        if not props and isinstance(extra, Mapping):
            result["key"] = self.value(given.get("key"), extra, path=f"{path}.key", stack=stack)
        return result

    def _array(self, hint: object, node: Schema, *, path: str, stack: tuple[str, ...]) -> Any:
        limits = constraints(node)
        low = int(limits.get("minItems", 0))
        high = int(limits.get("maxItems", max(low, 3)))
        items: Schema = node.get("items") or {}
        recursive = str(items.get("$ref")) in stack or len(stack) > _MAX_DEPTH
        wanted = len(hint) if isinstance(hint, list) else (low if recursive else 2)
        count = min(max(wanted, low), high)
        given = [*(hint if isinstance(hint, list) else []), *([None] * count)]
        return [self.value(given[i], items, path=f"{path}[{i}]", stack=stack) for i in range(count)]

    def _number(self, hint: object, node: Schema, *, integer: bool, path: str) -> int | float:
        limits = constraints(node)
        if _fits_type(hint, "integer" if integer else "number") and _within(hint, limits):  # type: ignore[arg-type]
            return hint  # type: ignore[return-value]
        digest = _digest(self.seed, path)
        return _pick_integer(limits, digest) if integer else _pick_float(limits, digest)

    def _string(self, hint: object, node: Schema, *, path: str) -> str:
        fmt = node.get("format")
        if fmt == "uuid":
            raw = hashlib.sha256(f"{self.seed}|{path}".encode()).digest()[:16]
            return str(uuid.UUID(bytes=raw, version=4))
        if isinstance(fmt, str) and fmt in _FORMAT_VALUES:
            return _FORMAT_VALUES[fmt]
        text = hint if isinstance(hint, str) else _placeholder(path)
        limits = constraints(node)
        text = text.ljust(int(limits.get("minLength", 0)), ".")
        return text[: int(limits.get("maxLength", len(text)))]


def _placeholder(path: str) -> str:
    """Readable filler named after the field, numbered inside arrays: "[sandbox] tags 2"."""
    field, _, index = path.rsplit(".", 1)[-1].partition("[")
    words = field.strip("$").replace("_", " ") or "value"
    return f"[sandbox] {words} {int(index.split(']')[0]) + 1}" if index else f"[sandbox] {words}"


def _fits_type(value: object, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "boolean": bool,
        "object": dict,
        "array": list,
        "null": type(None),
    }
    return kind in checks and isinstance(value, checks[kind])


def _hint_fits(hint: object, node: Schema) -> bool:
    if hint is None:  # no hint: let the caller prefer a non-null branch
        return False
    if "const" in node or "enum" in node:
        return hint == node.get("const") or hint in (node.get("enum") or [])
    return any(_fits_type(hint, kind) for kind in _types(node))


def _within(value: float, limits: Mapping[str, float]) -> bool:
    return (
        value >= limits.get("minimum", -math.inf)
        and value <= limits.get("maximum", math.inf)
        and value > limits.get("exclusiveMinimum", -math.inf)
        and value < limits.get("exclusiveMaximum", math.inf)
    )


def _pick_integer(limits: Mapping[str, float], digest: int) -> int:
    """A deterministic integer within the bounds, on `multipleOf` when one is set."""
    lows = [math.ceil(limits["minimum"])] if "minimum" in limits else []
    lows += [math.floor(limits["exclusiveMinimum"]) + 1] if "exclusiveMinimum" in limits else []
    highs = [math.floor(limits["maximum"])] if "maximum" in limits else []
    highs += [math.ceil(limits["exclusiveMaximum"]) - 1] if "exclusiveMaximum" in limits else []
    low, high = (max(lows) if lows else None), (min(highs) if highs else None)
    low = low if low is not None else (high - 9 if high is not None else 1)
    high = high if high is not None else low + 9
    value = low + digest % (max(high - low, 0) + 1)
    step = int(limits.get("multipleOf", 1)) or 1
    value = math.ceil(value / step) * step
    return value if value <= high else math.floor(high / step) * step


def _pick_float(limits: Mapping[str, float], digest: int) -> float:
    """A deterministic number strictly between the bounds (or on them, when they meet)."""
    low = limits.get("minimum", limits.get("exclusiveMinimum", -math.inf))
    high = limits.get("maximum", limits.get("exclusiveMaximum", math.inf))
    if math.isinf(low):
        low = high - 10.0 if not math.isinf(high) else 0.0
    if math.isinf(high):
        high = low + 10.0
    fraction = 0.25 + (digest % 1000) / 2000  # in [0.25, 0.75): clear of both bounds
    return low + (high - low) * fraction
