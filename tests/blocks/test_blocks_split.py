"""Splitting keeps every character, respects the limit, and never breaks an entity or a fence."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocks import clip, slack_length, split_chunks, split_mrkdwn
from blocks.split import MIN_LIMIT, REOPEN

ENTITY = re.compile(r"&(?:amp|lt|gt);")
TOKENS = [
    "a",
    "word ",
    "longerword",
    " ",
    "\n",
    "\n\n",
    "```",
    "```py\n",
    "`",
    "``",
    "&amp;",
    "&lt;",
    "&gt;",
    "&",
    ";",
    "<https://x.example|y>",
    "<@U123>",
    "é",
    "🙂",
    "*bold*",
    "x" * 45,
]
texts = st.lists(st.sampled_from(TOKENS), max_size=300).map("".join)


def _fences(text: str) -> int:
    return len(re.findall("```", text))


@settings(max_examples=300, deadline=None)
@given(text=texts, limit=st.integers(min_value=MIN_LIMIT, max_value=400))
def test_split_is_lossless_bounded_and_balanced(text: str, limit: int) -> None:
    chunks = split_chunks(text, limit)
    assert "".join(chunk.body for chunk in chunks) == text
    assert [chunk.text for chunk in chunks] == split_mrkdwn(text, limit)
    for chunk in chunks:
        assert slack_length(chunk.text) <= limit
        assert chunk.prefix in ("", REOPEN)
        assert chunk.suffix in ("", "```", "\n```")
    for before, after in itertools.pairwise(chunks):
        # a fence closed by the split is reopened by it, and only then
        assert bool(before.suffix) == bool(after.prefix)
        assert before.body  # progress: no empty chunk
    for chunk in chunks[:-1]:
        assert _fences(chunk.text) % 2 == 0, chunk
    # the last chunk is open at its end exactly when the input is
    assert _fences(chunks[-1].text) % 2 == _fences(text) % 2


@settings(max_examples=200, deadline=None)
@given(text=texts, limit=st.integers(min_value=MIN_LIMIT, max_value=200))
def test_split_never_cuts_inside_an_entity(text: str, limit: int) -> None:
    cuts, position = set(), 0
    for chunk in split_chunks(text, limit)[:-1]:
        position += len(chunk.body)
        cuts.add(position)
    for match in ENTITY.finditer(text):
        assert not any(match.start() < cut < match.end() for cut in cuts), (match, cuts)


def test_short_text_is_one_chunk_unchanged() -> None:
    assert split_mrkdwn("hello & <b>", 3000) == ["hello & <b>"]
    assert split_mrkdwn("", 3000) == [""]


def test_split_prefers_paragraph_breaks() -> None:
    text = "a" * 60 + "\n\n" + "b" * 30 + "\n" + "c" * 10
    assert split_mrkdwn(text, 100) == ["a" * 60 + "\n\n", "b" * 30 + "\n" + "c" * 10]


def test_split_falls_back_to_words_then_hard_cuts() -> None:
    words = split_mrkdwn("alpha beta gamma delta epsilon zeta eta theta", 32)
    assert words == ["alpha beta gamma delta epsilon ", "zeta eta theta"]
    assert split_mrkdwn("x" * 70, 32) == ["x" * 32, "x" * 32, "x" * 6]


def test_split_inside_a_code_fence_closes_and_reopens_it() -> None:
    code = "".join(f"line {n}\n" for n in range(20))
    text = f"intro\n```\n{code}```\nafter"
    chunks = split_mrkdwn(text, 60)
    assert len(chunks) > 2
    for chunk in chunks:
        assert _fences(chunk) % 2 == 0
    assert chunks[1].startswith("```\n") and chunks[0].endswith("```")


def test_split_keeps_entities_whole_at_a_hard_cut() -> None:
    text = "&amp;" * 20
    for chunk in split_mrkdwn(text, 32):
        assert ENTITY.sub("", chunk) == ""


def test_split_rejects_limits_too_small_to_be_safe() -> None:
    with pytest.raises(ValueError, match="at least"):
        split_mrkdwn("text", 10)


def test_clip_cuts_at_a_word_and_never_inside_an_entity() -> None:
    assert clip("short", 10) == "short"
    assert clip("one two three four five", 16) == "one two three…"
    assert clip("a" * 8 + "&amp;" * 3, 12) == "a" * 8 + "…"
    assert slack_length(clip("z" * 500, 150)) == 150  # bytes: "…" is three
