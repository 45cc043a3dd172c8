"""Scenario tests: a run feels live. The strategy shows as Opus writes it, the thread's
loading status follows the work and is cleared at the end. The real app, over the wire,
against both sandboxes."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.harness import running_stack

QUESTION = "Design a REST API for a social network"


async def test_the_strategys_first_words_are_shown_before_the_plan_call_returns(
    tmp_path: Path,
) -> None:
    # Slow enough that the plan streams for about a second and a half.
    async with running_stack(tmp_path, time_scale=0.25) as stack:
        await stack.command(QUESTION)
        await stack.settle()

        top, _ = stack.thread()
        plan = next(r for r in stack.claude.requests if r.role == "plan")
        updates = stack.slack.calls_to("chat.update")
    drafts = [u for u in updates if "writing the strategy" in u.args.get("text", "")]
    assert drafts, "no draft of the strategy was shown"
    assert plan.first_token is not None and plan.finished is not None
    assert drafts[0].at < plan.finished - 0.5
    # The draft already names the strategy: its header is the title being written.
    assert any(b.get("type") == "header" for b in drafts[0].args["blocks"])
    # At most about one draft a second, and the final message is the finished strategy.
    gaps = [b.at - a.at for a, b in itertools.pairwise(drafts)]
    assert all(gap >= 0.95 for gap in gaps)
    assert "writing the strategy" not in top.text and "Done in" in top.text


async def test_the_loading_status_is_set_on_the_thread_while_models_work_and_cleared(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.command(QUESTION)
        await stack.settle()

        top, replies = stack.thread()
        calls = stack.slack.calls_to("assistant.threads.setStatus")
        shown_now = stack.slack.workspace.current_status("C0GENERAL", top.ts)
    assert calls and all(c.ok and c.args["thread_ts"] == top.ts for c in calls)
    said = [c.args["status"] for c in calls]
    assert said[0] == "Opus is planning…"
    assert any("Haiku is writing" in s for s in said)
    assert "Sonnet is reviewing…" in said
    assert said[-1] == "" and shown_now == ""
    assert all(c.args.get("loading_messages") for c in calls if c.args["status"])
    # Set again after each example is posted (Slack clears it on every reply).
    examples = len(replies) - 1
    assert len([s for s in said if s]) >= examples + 1
