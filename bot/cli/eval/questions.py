"""The questions an eval asks: the shipped starter set, or a file of your own.

`starter` names the 20 questions shipped as package data (`starter.yaml`, found by an
installed wheel too). A file ending in `.json`, `.yaml` or `.yml` holds a list of strings;
any other file holds one question per line, where blank lines and lines starting with `#`
are skipped. A problem is a `ValueError` whose message says what to fix.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import yaml

STARTER = "starter"


def load_questions(source: str, *, max_chars: int) -> list[str]:
    if source == STARTER:
        text = resources.files("bot.cli.eval").joinpath("starter.yaml").read_text("utf-8")
        questions = _listed(yaml.safe_load(text), "the starter set")
    else:
        path = Path(source)
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the questions file {source!r}: {exc}") from None
        if path.suffix.lower() in (".json", ".yaml", ".yml"):
            try:
                data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
            except (ValueError, yaml.YAMLError) as exc:
                raise ValueError(
                    f"{source} is not valid {path.suffix[1:].upper()}: {exc}"
                ) from None
            questions = _listed(data, source)
        else:
            questions = [
                line.strip()
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
    if not questions:
        raise ValueError(f"{source} holds no questions")
    for number, question in enumerate(questions, start=1):
        if len(question) > max_chars:
            raise ValueError(
                f"question {number} is {len(question):,} characters; the limit is "
                f"{max_chars:,} (ORCHESTRATE_MAX_QUESTION_CHARS)"
            )
    return questions


def _listed(data: object, where: str) -> list[str]:
    if not isinstance(data, list) or not all(isinstance(q, str) for q in data):
        raise ValueError(f"{where} must be a list of questions (strings)")
    return [" ".join(q.split()) for q in data if q.strip()]
