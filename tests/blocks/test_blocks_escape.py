"""Escaping makes untrusted text inert; we mention only valid ids; `blocks` never imports `bot`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from blocks import channel_mention, escape, escape_code, user_mention
from blocks.escape import WORD_JOINER

BLOCKS_DIR = Path(__file__).resolve().parents[2] / "blocks"


def test_escape_encodes_ampersand_first_then_angle_brackets() -> None:
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape("&lt;") == "&amp;lt;"  # an entity in model text stays text, not markup


@pytest.mark.parametrize(
    "hostile",
    [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<@U123ABC>",
        "<#C123>",
        "<https://evil.example|innocent>",
    ],
)
def test_escape_leaves_no_slack_control_sequence(hostile: str) -> None:
    escaped = escape(hostile)
    assert "<" not in escaped and ">" not in escaped
    assert escaped.startswith("&lt;")


@pytest.mark.parametrize(
    "word", ["@here", "@channel", "@everyone", "@HERE", "@Channel", "@everyones"]
)
def test_escape_breaks_bare_broadcasts_with_an_invisible_joiner(word: str) -> None:
    escaped = escape(f"hey {word}!")
    assert word not in escaped
    assert escaped == f"hey @{WORD_JOINER}{word[1:]}!"


def test_escape_leaves_other_at_words_and_is_stable_on_its_own_output() -> None:
    assert escape("mail me@example.com, cc @alice") == "mail me@example.com, cc @alice"
    once = escape("@here")
    assert escape(once) == once


def test_escape_code_keeps_broadcast_words_so_code_copies_intact() -> None:
    assert escape_code("@here <b> & c") == "@here &lt;b&gt; &amp; c"


def test_user_mention_only_for_valid_ids() -> None:
    assert user_mention("U012ABCDEF") == "<@U012ABCDEF>"
    assert user_mention("W0ABC") == "<@W0ABC>"
    assert user_mention("U1> <!channel") == "U1&gt; &lt;!channel"
    assert user_mention("u012abc") == "u012abc"
    assert user_mention("@here") == f"@{WORD_JOINER}here"


def test_channel_mention_only_for_valid_ids() -> None:
    assert channel_mention("C0ABCDEF") == "<#C0ABCDEF>"
    assert channel_mention("C0|x>") == "C0|x&gt;"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_blocks_module_imports_bot() -> None:
    files = sorted(BLOCKS_DIR.rglob("*.py"))
    assert len(files) > 5
    for path in files:
        offending = {m for m in _imported_modules(path) if m == "bot" or m.startswith("bot.")}
        assert not offending, f"{path.name} imports {offending}"


def test_importing_blocks_loads_nothing_from_bot() -> None:
    probe = "import sys, blocks; print(sorted(m for m in sys.modules if m.split('.')[0] == 'bot'))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_header_shows_ampersands_and_angles_as_typed_but_stays_inert() -> None:
    from blocks.message import header

    text = header("R&D <Plans> & <!channel> <https://evil.example|x> @here")["text"]["text"]
    assert text.startswith("R&D <Plans> & ")
    assert "&amp;" not in text and "&lt;" not in text
    for sequence in ("<!", "<http"):
        assert sequence not in text
    assert "@here" not in text and "@\u2060here" in text
