"""What a person types reaches the model as typed and Slack escaped once, over both wires.

Slack sends `&`, `<` and `>` in command text as entities; the app decodes them before a model
sees the question and escapes them again for Slack. The Claude stand-in records each request,
so the test reads the question exactly as the model received it.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from tests.harness import running_stack

TYPED = "How should R&D teams roll out <feature flags> & canaries (A>B)?"


async def test_a_typed_ampersand_reaches_the_model_as_typed_and_slack_escaped_once(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.command(TYPED)
        await stack.settle()
        top, _ = stack.thread()
        transcript = stack.slack.transcript("C0GENERAL")
        (plan,) = [r for r in stack.claude.requests if r.role == "plan"]
    # The prompt puts the question in an XML-style tag, escaped as XML: read as XML, it is
    # exactly what was typed (not `R&amp;D`).
    (tagged,) = re.findall(r"<question>(.*?)</question>", _text(plan.body["messages"][0]))
    assert html.unescape(tagged) == TYPED
    shown = top.text + json.dumps(top.blocks)
    assert "R&amp;D" in shown and "&amp;amp;" not in shown
    assert "&lt;feature flags&gt;" in shown
    assert "How should R&D teams roll out <feature flags> & canaries (A>B)?" in transcript


def _text(message: dict[str, object]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    assert isinstance(content, list)
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))


async def test_a_strategy_title_with_an_ampersand_reads_as_typed_in_the_header(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.claude.add_rule(
            role="plan",
            times=1,
            text=json.dumps(
                {
                    "title": "R&D <rollout> plan",
                    "essence": "Ship behind flags.",
                    "components": [
                        {"name": "Flags", "instruction": "Use flags."},
                        {"name": "Canaries", "instruction": "Use canaries."},
                    ],
                }
            ),
        )
        await stack.command(TYPED)
        await stack.settle()
        transcript = stack.slack.transcript("C0GENERAL")
    # The sandbox shows plain_text as sent, as Slack does: an escaped header would read
    # "R&amp;D &lt;rollout&gt; plan".
    assert "# R&D <rollout> plan" in transcript


async def test_a_mention_reaches_the_model_as_typed_too(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.slack.mention(text=f"@orchestrate {TYPED}")
        await stack.settle()
        (plan,) = [r for r in stack.claude.requests if r.role == "plan"]
    (tagged,) = re.findall(r"<question>(.*?)</question>", _text(plan.body["messages"][0]))
    assert html.unescape(tagged) == TYPED
