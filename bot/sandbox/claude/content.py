"""What the Claude sandbox says: role detection and deterministic, plausible answers.

The role comes from the request's `output_config.format` as docs/architecture.md fixes it:
a schema with `components` is a plan, one with `checks` a review, one with `winner` an
eval's pairwise judgment, no schema an example (a `<component>` in the turn), a follow-up
answer (`<followup>`) or an eval's all-in-one baseline (a bare `<question>`), any other
schema generic JSON. The stand-in judge scores each answer from its own text (a hash per
criterion), so its verdict does not depend on the order the answers are given in. The
answer reads the wire tags the app puts in the last user message (`<question>`,
`<component name=…>`, `<component name=… status=…>`, html-escaped) and is a pure function
of the request's `seed`, so the same prompt always gets the same answer, streamed or not.
Every answer is visibly marked as sandbox output. Structured answers go through
`claude_schema.conform`, so they validate against whatever schema the caller sent,
including one that differs from the app's.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.sandbox.claude.schema import Schema, break_instance, conform

Role = Literal["plan", "example", "review", "generic", "answer", "baseline", "judge"]

SANDBOX_MARK = "[sandbox]"
REFUSAL_TEXT = f"{SANDBOX_MARK} I can't help with that request."

_QUESTION = re.compile(r"<question>(.*?)</question>", re.DOTALL)
_COMPONENT = re.compile(r"<component\s+([^>]*)>(.*?)</component>", re.DOTALL)
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    instruction: str
    status: str = "ok"


@dataclass(frozen=True, slots=True)
class Bank:
    """Components suited to a kind of question, chosen when one of `keywords` appears."""

    keywords: tuple[str, ...]
    title: str
    components: tuple[tuple[str, str], ...]


_BANKS = (
    Bank(
        ("auth", "login", "jwt", "oauth", "password", "session", "sign-in", "signup"),
        "Authentication",
        (
            ("User model", "Show the user schema with a salted password hash"),
            ("Token issuing", "Show signing a short-lived JWT at login"),
            ("Auth middleware", "Show validating the bearer token on each request"),
            ("Rate limiting", "Show a per-IP limit on login attempts"),
            ("Token refresh", "Show rotating refresh tokens and revoking old ones"),
            ("Audit log", "Show recording sign-ins and failures"),
        ),
    ),
    Bank(
        ("api", "rest", "endpoint", "http", "graphql", "route"),
        "API Design",
        (
            ("Resource model", "Show the core resources and their fields"),
            ("Routing", "Show the routes with verbs and status codes"),
            ("Validation", "Show request validation with clear error bodies"),
            ("Pagination", "Show cursor pagination for list endpoints"),
            ("Error handling", "Show one error shape mapped from exceptions"),
            ("Versioning", "Show a versioned prefix and a deprecation header"),
        ),
    ),
    Bank(
        ("database", "sql", "postgres", "schema", "index", "migration", "query"),
        "Data Layer",
        (
            ("Schema", "Show the tables with keys and constraints"),
            ("Indexes", "Show an index for the hottest query"),
            ("Migrations", "Show a reversible migration"),
            ("Connection pool", "Show opening and closing a pool"),
            ("Transactions", "Show a unit of work that rolls back on error"),
        ),
    ),
    Bank(
        ("cache", "redis", "latency", "performance", "slow"),
        "Caching",
        (
            ("Cache key design", "Show keys that include every input"),
            ("Read-through cache", "Show fetching on miss and storing with a TTL"),
            ("Invalidation", "Show evicting on write"),
            ("Stampede protection", "Show a lock so one caller refills a key"),
            ("Metrics", "Show counting hits and misses"),
        ),
    ),
    Bank(
        ("queue", "worker", "job", "background", "async", "event", "kafka"),
        "Background Work",
        (
            ("Job definition", "Show a small idempotent job payload"),
            ("Producer", "Show enqueueing a job after commit"),
            ("Worker loop", "Show a worker that acks after success"),
            ("Retries", "Show bounded retries with backoff"),
            ("Dead letters", "Show parking jobs that keep failing"),
        ),
    ),
    Bank(
        ("deploy", "docker", "kubernetes", "ci", "pipeline", "release", "infra"),
        "Delivery",
        (
            ("Container image", "Show a slim multi-stage image"),
            ("CI checks", "Show lint, type check and tests on every push"),
            ("Configuration", "Show settings read once from the environment"),
            ("Health checks", "Show liveness and readiness endpoints"),
            ("Rollout", "Show a rolling deploy with a quick rollback"),
        ),
    ),
)
_GENERIC = Bank(
    (),
    "Approach",
    (
        ("Core model", "Show the central data structure"),
        ("Main flow", "Show the happy path end to end"),
        ("Error handling", "Show how failures surface to the user"),
        ("Configuration", "Show the settings that change behaviour"),
        ("Tests", "Show one test that pins the main behaviour"),
    ),
)
_GAPS = (
    "No example covers what happens when a dependency times out.",
    "Secrets handling is not shown; keep keys out of code and logs.",
    "Nothing measures the result; add one metric per component.",
    "Concurrency limits are implicit; state them.",
    "Input validation is only sketched at the edge.",
)
_NEXT_STEPS = (
    "Turn each example into a tested module.",
    "Add an end-to-end test across the components.",
    "Write down the failure modes and how each surfaces.",
    "Load-test the slowest path before launch.",
)


def role_of(body: Mapping[str, Any]) -> Role:
    """The pipeline role a request plays, read from its output schema."""
    schema = schema_of(body)
    if schema is None:
        # A follow-up question about a thread is answered in prose, not as an example.
        text = last_user_text(body)
        if "<followup>" in text:
            return "answer"
        if "<component" not in text and _QUESTION.search(text):
            return "baseline"
        return "example"
    properties = _root_properties(schema)
    if "components" in properties:
        return "plan"
    if "winner" in properties:
        return "judge"
    return "review" if "checks" in properties else "generic"


def schema_of(body: Mapping[str, Any]) -> Schema | None:
    output = body.get("output_config")
    fmt = output.get("format") if isinstance(output, Mapping) else None
    schema = fmt.get("schema") if isinstance(fmt, Mapping) else None
    return schema if isinstance(schema, Mapping) else None


def _root_properties(schema: Schema) -> Mapping[str, Any]:
    node: Any = schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
    props = node.get("properties") if isinstance(node, Mapping) else None
    return props if isinstance(props, Mapping) else {}


def last_user_text(body: Mapping[str, Any]) -> str:
    """The text of the last user turn: what rules match with `contains` and tags come from."""
    messages = body.get("messages")
    users = [m for m in messages or () if isinstance(m, Mapping) and m.get("role") == "user"]
    return content_text(users[-1].get("content")) if users else ""


def _all_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    users = [m for m in messages or () if isinstance(m, Mapping) and m.get("role") == "user"]
    return "\n".join(content_text(m.get("content")) for m in users)


_FOLLOWUP = re.compile(r"<followup>(.*?)</followup>", re.DOTALL)
_PERSON = re.compile(r'<message author="([^"]*)" from="person">(.*?)</message>', re.DOTALL)


def answer_markdown(text: str) -> str:
    """A short prose answer to a follow-up, quoting the thread's latest person (as a model
    that grounds its answer in the thread would), so tests see thread text come back."""
    match = _FOLLOWUP.search(text)
    request = " ".join(html.unescape(match.group(1) if match else text).split())[:200]
    people = _PERSON.findall(text)
    latest = ""
    if people:
        author, said = (html.unescape(part).strip() for part in people[-1])
        latest = f" The latest point in the thread, from {author}: “{said[:300]}”."
    return (
        f"{SANDBOX_MARK} On “{request}”: the run covers the main path; what it leaves open is "
        f"failure handling and who owns each part.{latest}\n\n"
        "- Check the riskiest component first.\n- Write down what is still undecided."
    )


def content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, Sequence) else ()
    return "\n".join(
        str(b.get("text", "")) for b in blocks if isinstance(b, Mapping) and b.get("type") == "text"
    )


def answer(role: Role, body: Mapping[str, Any], *, seed: str) -> str:
    """The visible answer: Markdown for an example, schema-valid JSON otherwise."""
    if role == "example":
        return example_markdown(_components(last_user_text(body))[:1], seed=seed)
    if role == "answer":
        return answer_markdown(_all_user_text(body))
    if role == "baseline":
        return baseline_markdown(last_user_text(body), seed=seed)
    return json.dumps(structured_value(role, body, seed=seed), ensure_ascii=False)


def invalid_answer(role: Role, body: Mapping[str, Any], *, seed: str) -> str:
    """An answer that fails validation: a required field missing, or no code block."""
    schema = schema_of(body)
    if role == "example" or schema is None:
        return f"# Draft\n\n{SANDBOX_MARK} The example could not be written out in full."
    broken = break_instance(structured_value(role, body, seed=seed), schema)
    return json.dumps(broken, ensure_ascii=False)


def structured_value(role: Role, body: Mapping[str, Any], *, seed: str) -> Any:
    text = last_user_text(body)
    hints = {"plan": _plan_hint, "review": _review_hint, "judge": _judge_hint}
    hint = hints[role](text, seed) if role in hints else None
    return conform(hint, schema_of(body) or {}, seed=seed)


def thinking_summary(role: Role, body: Mapping[str, Any]) -> str:
    """A short summarised thought, like the API returns in place of raw reasoning."""
    topic = _topic(role, last_user_text(body))
    return (
        f"{SANDBOX_MARK} Summarised thinking: working out the {role} for “{topic}”. "
        "Checked the constraints in the prompt, then drafted the answer."
    )


def signature(seed: str) -> str:
    """An opaque, deterministic stand-in for the thinking block's signature."""
    digest = hashlib.sha256(f"signature|{seed}".encode()).digest() * 3
    return base64.b64encode(digest).decode()


def _topic(role: Role, text: str) -> str:
    if role == "plan":
        return _question(text)[:80]
    components = _components(text)
    return components[0].name if components and role == "example" else role


def _question(text: str) -> str:
    match = _QUESTION.search(text)
    return " ".join(html.unescape(match.group(1) if match else text).split()) or "the question"


def _components(text: str) -> list[Component]:
    found = []
    for attrs, body in _COMPONENT.findall(text):
        fields = dict(_ATTRIBUTE.findall(attrs))
        name = html.unescape(fields.get("name", "")).strip() or "Component"
        instruction = " ".join(html.unescape(body).split())
        found.append(Component(name, instruction, fields.get("status", "ok")))
    return found or [Component("Example", " ".join(text.split())[:200] or "Show the idea")]


def _pick(seed: str, salt: str, modulo: int) -> int:
    digest = hashlib.sha256(f"{seed}|{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % modulo


def _bank(question: str) -> Bank:
    words = question.lower()
    return next((b for b in _BANKS if any(k in words for k in b.keywords)), _GENERIC)


def _plan_hint(text: str, seed: str) -> dict[str, Any]:
    question = _question(text)
    bank = _bank(question)
    count = 3 + _pick(seed, "count", 3)
    start = _pick(seed, "start", len(bank.components))
    chosen = [bank.components[(start + i) % len(bank.components)] for i in range(count)]
    names = ", ".join(name.lower() for name, _ in chosen[:2])
    return {
        "title": f"{bank.title}: {question[:60].rstrip()}",
        "essence": (
            f"{SANDBOX_MARK} Treat “{question[:120]}” as a small set of independent parts. "
            f"Start with {names}, and keep each part testable on its own. "
            "This plan was produced locally by the sandbox, not by a model."
        ),
        "components": [{"name": n, "instruction": i} for n, i in chosen],
    }


def _review_hint(text: str, seed: str) -> dict[str, Any]:
    checks = [_check(c, seed) for c in _components(text)]
    gaps = _several(_GAPS, seed, "gaps", 1 + _pick(seed, "gap-count", 3))
    steps = _several(_NEXT_STEPS, seed, "steps", 2 + _pick(seed, "step-count", 2))
    return {"checks": checks, "gaps": gaps, "next_steps": steps}


_ANSWER = re.compile(r'<answer id="([AB])">(.*?)</answer>', re.DOTALL)
_CRITERIA = ("correct", "complete", "actionable", "concise")


def _judge_hint(text: str, seed: str) -> dict[str, Any]:
    """Scores 1-5 per criterion from each answer's own text, so swapping A and B swaps the
    verdict (no position bias); the better mean wins, equal means are a tie."""
    answers = dict(_ANSWER.findall(text))
    scores = {
        label: {c: 1 + _pick(html.unescape(answers.get(label, "")), c, 5) for c in _CRITERIA}
        for label in ("A", "B")
    }
    a, b = (sum(scores[label].values()) for label in ("A", "B"))
    winner = "tie" if a == b else ("A" if a > b else "B")
    return {
        "a": scores["A"],
        "b": scores["B"],
        "winner": winner,
        "reason": f"{SANDBOX_MARK} Scored by the sandbox from each answer's text, not by a model.",
    }


def baseline_markdown(text: str, *, seed: str) -> str:
    """An all-in-one answer: the plan's strategy, an example per component, a short review."""
    plan = _plan_hint(text, seed)
    components = [Component(c["name"], c["instruction"]) for c in plan["components"]]
    parts = [f"# {plan['title']}", "", plan["essence"], ""]
    for component in components:
        example = example_markdown([component], seed=f"{seed}|{component.name}")
        parts += ["#" + example.rsplit("\n\n_", 1)[0], ""]
    tags = "".join(f'<component name="{html.escape(c.name)}"></component>' for c in components)
    review = _review_hint(tags, seed)
    parts += ["## Review", ""]
    marks = {"ok": "✓", "warning": "⚠", "problem": "✗"}
    parts += [f"- {marks[c['verdict']]} {c['component']}: {c['reason']}" for c in review["checks"]]
    parts += ["", "**Gaps**", *(f"- {g}" for g in review["gaps"])]
    parts += ["", "**Next steps**", *(f"- {s}" for s in review["next_steps"]), ""]
    parts.append(f"_{SANDBOX_MARK} Generated locally by the Claude sandbox, not by a model._")
    return "\n".join(parts)


def _check(component: Component, seed: str) -> dict[str, str]:
    if component.status == "failed":
        verdict, reason = "problem", "The example failed, so nothing shows this part works."
    elif _pick(seed, component.name, 4) == 0:
        verdict, reason = "warning", "The example works but skips the failure path."
    else:
        verdict, reason = "ok", "The example matches the instruction and stays small."
    return {"component": component.name, "verdict": verdict, "reason": f"{SANDBOX_MARK} {reason}"}


def _several(options: Sequence[str], seed: str, salt: str, count: int) -> list[str]:
    start = _pick(seed, salt, len(options))
    return [f"{SANDBOX_MARK} {options[(start + i) % len(options)]}" for i in range(count)]


def example_markdown(components: Sequence[Component], *, seed: str) -> str:
    """The example answer: heading, explanation, code, why, integration, sandbox mark."""
    component = components[0] if components else Component("Example", "Show the idea")
    language, code = _code(component, seed)
    return "\n".join(
        (
            f"# {component.name}",
            "",
            f"{component.instruction.rstrip('.')}. This sketch keeps the idea to a few lines "
            "so the shape is easy to see. Names are placeholders to adapt to your codebase.",
            "",
            f"```{language}",
            code,
            "```",
            "",
            "## Why this works",
            f"{component.name} stays one small unit with its inputs passed in explicitly. "
            "That keeps it testable and lets the other parts depend on its interface only.",
            "",
            "## Integration point",
            f"Call {component.name.lower()} from the layer that owns the request, and pass "
            "its result on rather than reaching back into it.",
            "",
            f"_{SANDBOX_MARK} Generated locally by the Claude sandbox, not by a model._",
        )
    )


def _code(component: Component, seed: str) -> tuple[str, str]:
    ident = re.sub(r"\W+", "_", component.name.lower()).strip("_") or "example"
    hint = f"{component.name} {component.instruction}".lower()
    for words, language, template in _CODE_TEMPLATES:
        if any(w in hint for w in words):
            return language, template.format(ident=ident, n=1 + _pick(seed, "n", 9))
    return _CODE_TEMPLATES[-1][1], _CODE_TEMPLATES[-1][2].format(ident=ident, n=2)


_CODE_TEMPLATES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("sql", "table", "schema", "index", "migration"),
        "sql",
        "CREATE TABLE {ident} (\n"
        "    id BIGINT PRIMARY KEY,\n"
        "    name TEXT NOT NULL,\n"
        "    created_at TIMESTAMPTZ NOT NULL DEFAULT now()\n"
        ");\n"
        "CREATE INDEX {ident}_created_idx ON {ident} (created_at);",
    ),
    (
        ("typescript", "javascript", "react", "node", "frontend"),
        "typescript",
        "export interface {ident}Input {{\n"
        "  id: string;\n"
        "  limit: number;\n"
        "}}\n\n"
        "export function {ident}(input: {ident}Input): string[] {{\n"
        "  const size = Math.min(input.limit, {n}0);\n"
        "  return Array.from({{ length: size }}, (_, i) => `${{input.id}}-${{i}}`);\n"
        "}}",
    ),
    (
        ("docker", "shell", "bash", "deploy", "ci ", "image", "rollout"),
        "bash",
        "#!/usr/bin/env bash\n"
        "set -euo pipefail\n"
        'tag="{ident}-$(git rev-parse --short HEAD)"\n'
        'docker build -t "$tag" .\n'
        'docker run --rm "$tag" pytest -q\n'
        'echo "built $tag ({n} checks passed)"',
    ),
    (
        (),
        "python",
        "from dataclasses import dataclass\n\n\n"
        "@dataclass(frozen=True)\n"
        "class {ident}_result:\n"
        "    ok: bool\n"
        "    detail: str\n\n\n"
        "def {ident}(value: str, *, limit: int = {n}) -> {ident}_result:\n"
        "    if len(value) > limit * 10:\n"
        '        return {ident}_result(False, "too long")\n'
        "    return {ident}_result(True, value.strip())",
    ),
)
