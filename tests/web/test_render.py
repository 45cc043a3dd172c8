"""The web view's pure parts: model text to safe HTML, the panes' states, the id_token checks."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from bot.core.events import ExampleReady, RunFailed, RunStarted, StrategyReady
from bot.core.models import Component, Strategy
from bot.core.pricing import CostSummary
from bot.ledger import PageRun, RunInfo, RunPage
from bot.settings import Settings
from bot.web.auth import SignInRefused, check_id_token, safe_next
from bot.web.markdown import render, render_inline
from bot.web.view import fold, panes_html, state

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[a](javascript:alert(1))",
    "[a](JAVASCRIPT:alert(1))",
    "[a](  javascript:alert(1))",
    "[a](java&#x09;script:alert(1))",
    "[a](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[a](vbscript:msgbox(1))",
    '[a](https://ok.example "x\\" onmouseover=\\"alert(1)")',
    '<https://ok.example/" onclick="alert(1)>',
    "![x](https://tracker.example/pixel.png)",
    '```"><script>alert(1)</script>\ncode\n```',
    "<svg onload=alert(1)>",
    "<a href='javascript:alert(1)'>x</a>",
]


class Elements(HTMLParser):
    """Every element and attribute the HTML really has (text that looks like markup is not)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_becomes_no_markup(text: str) -> None:
    parser = Elements()
    parser.feed(render(text) + render_inline(text))
    for tag, attrs in parser.found:
        assert tag in {"p", "a", "pre", "code", "span", "em", "strong"}, tag
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            if name == "href":
                assert (value or "").startswith("https://"), value


def test_safe_links_survive_with_rel_and_code_is_highlighted() -> None:
    html = render("[docs](https://docs.example/a?b=1&c=2)\n\n```python\nx = '<b>'\n```")
    assert 'href="https://docs.example/a?b=1&amp;c=2" rel="nofollow noopener noreferrer"' in html
    assert '<pre class="hl">' in html and "'&lt;b&gt;'" in html


def _run(status: str = "running", question: str | None = "<b>Q</b>") -> RunInfo:
    now = datetime.now(UTC)
    return RunInfo(
        id="r1", team_id="T", channel_id="C", user_id="U", question_chars=8,
        question=question, status=status, started_at=now, finished_at=None, elapsed_s=None,
        thread_channel="C", thread_ts="1.0", reserved_usd=Decimal(0), cost_usd=Decimal(0),
        calls=0, unpriced_calls=0, error=None, parent_run_id=None,
    )  # fmt: skip


COMPONENTS = (Component("A", "do a"), Component("B", "do b"))
MODELS = ("claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-5-5")


def test_the_panes_go_through_the_threads_states() -> None:
    events: list[object] = [RunStarted("", MODELS)]
    run = PageRun(_run(), ())
    assert state(fold(run), "running")[0] == "planning"
    events.append(StrategyReady(Strategy("T", "E", COMPONENTS), MODELS[0]))
    events.append(ExampleReady(1, COMPONENTS[1], "b", MODELS[1]))
    run = PageRun(_run(), tuple(events))  # type: ignore[arg-type]
    assert state(fold(run), "running") == ("illustrating", "Illustrating 1 of 2 with Haiku…")
    events.append(ExampleReady(0, COMPONENTS[0], "a", MODELS[1]))
    run = PageRun(_run(), tuple(events))  # type: ignore[arg-type]
    assert state(fold(run), "running")[0] == "reviewing"
    cost = CostSummary((), Decimal(0), Decimal(0), MODELS[0])
    stopped = PageRun(_run("failed"), (*run.events, RunFailed("stop", cost, 1.0, stopped_by="U")))
    assert state(fold(stopped), "failed")[0] == "stopped"
    html = panes_html(RunPage(replace(run, run=_run()), ()), slack_link="javascript:x")
    assert "&lt;b&gt;Q&lt;/b&gt;" in html and "<b>Q</b>" not in html
    assert "Planned by Opus" in html and "Illustrated by Haiku" in html


SETTINGS = Settings(slack_client_id="cid", slack_client_secret="s" * 20)


def _token(**claims: object) -> str:
    base = {"iss": "https://slack.com", "aud": "cid", "exp": time.time() + 60, "nonce": "n1",
            "sub": "U1"}  # fmt: skip
    body = base64.urlsafe_b64encode(json.dumps({**base, **claims}).encode()).decode().rstrip("=")
    return f"e30.{body}.c2ln"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iss": "https://evil.example"}, "not from Slack"),
        ({"aud": "another-app"}, "another app"),
        ({"exp": time.time() - 1}, "expired"),
        ({"nonce": "n2"}, "nonce"),
    ],
)
def test_an_id_token_that_is_not_for_this_sign_in_is_refused(
    claims: dict[str, object], why: str
) -> None:
    with pytest.raises(SignInRefused, match=why):
        check_id_token(_token(**claims), settings=SETTINGS, nonce="n1")
    assert check_id_token(_token(), settings=SETTINGS, nonce="n1")["sub"] == "U1"


def test_next_stays_on_the_site() -> None:
    assert safe_next("/runs/x") == "/runs/x"
    for outside in ("//evil.example", "https://evil.example", "/\\evil.example", "javascript:x"):
        assert safe_next(outside) == "/web"
