"""Scenario tests: 👍/👎 on a review, over the wire, and what admins see of them.

One vote per person and run (a double click counts once; a change replaces it), an
ephemeral thanks, the optional "what was wrong?" modal after a 👎, and the votes with
satisfaction and cost per 👍 in the admin's App Home and `/orchestrate costs`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Mode, Stack, running_stack

QUESTION = "Design a REST API for a social network"
VOTE = "orchestrate_feedback"


async def finished_run(stack: Stack) -> Any:
    await stack.command(QUESTION)
    await stack.settle()
    _, replies = stack.thread()
    review = replies[-1]
    assert VOTE in json.dumps(review.blocks)
    return review


async def told(stack: Stack, user_id: str, count: int) -> list[str]:
    async with asyncio.timeout(10):
        while len(stack.slack.ephemerals(user_id)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return [e.text for e in stack.slack.ephemerals(user_id)]


def votes(stack: Stack) -> list[tuple[str, int, str | None]]:
    path = stack.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        return [(u, v, r) for u, v, r in db.execute("SELECT user_id, vote, reason FROM votes")]


async def open_home(stack: Stack, *users: str) -> dict[str, str]:
    before = {u: stack.slack.workspace.home_views.get(u) for u in users}
    for user in users:
        event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
        if stack.events_url is None:
            await stack.slack.send_event(event)
        else:
            await stack.slack.post_event_http(stack.events_url, event)
    async with asyncio.timeout(10):
        while any(stack.slack.workspace.home_views.get(u) is before[u] for u in users):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    views = stack.slack.workspace.home_views
    return {u: json.dumps(views[u].view, ensure_ascii=False) for u in users}


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_an_up_vote_shows_in_the_admins_app_home_and_not_to_members(
    tmp_path: Path, mode: Mode
) -> None:
    async with running_stack(tmp_path, mode=mode) as stack:
        review = await finished_run(stack)
        await stack.slack.click(
            "C0GENERAL", review.ts, VOTE, user_id="U0BOB", choice="positive", url=stack.events_url
        )
        thanks = await told(stack, "U0BOB", 1)
        homes = await open_home(stack, "U0ADMIN", "U0BOB")
    assert "Thanks for the 👍" in thanks[0]
    assert votes(stack) == [("U0BOB", 1, None)]
    admin = homes["U0ADMIN"]
    assert "👍 1 · 👎 0 · 100% satisfied" in admin and "per 👍" in admin
    assert "Opus + Haiku + Sonnet" in admin or "Haiku + Opus + Sonnet" in admin
    assert "Feedback" not in homes["U0BOB"]


async def test_a_double_click_counts_once_and_a_change_of_mind_replaces_the_vote(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        review = await finished_run(stack)
        click = stack.slack.click_payload(
            "C0GENERAL", review.ts, VOTE, user_id="U0BOB", choice="positive"
        )
        await asyncio.gather(
            stack.slack.send_interactive(click), stack.slack.send_interactive(click)
        )
        replies = await told(stack, "U0BOB", 2)
        assert votes(stack) == [("U0BOB", 1, None)]
        await stack.slack.click("C0GENERAL", review.ts, VOTE, user_id="U0BOB", choice="negative")
        replies = await told(stack, "U0BOB", 3)
    assert sorted(replies[:2]) == sorted(
        ["Thanks for the 👍: it helps weigh what these answers cost against their use.",
         "Your 👍 was already counted, once."]
    )  # fmt: skip
    assert "Changed your vote to 👎" in replies[2]
    assert votes(stack) == [("U0BOB", -1, None)]


async def test_a_down_vote_offers_a_what_was_wrong_modal_whose_answer_is_kept(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        review = await finished_run(stack)
        await stack.slack.click("C0GENERAL", review.ts, VOTE, user_id="U0BOB", choice="negative")
        async with asyncio.timeout(10):
            while not stack.slack.open_modals("U0BOB"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        modal = stack.slack.open_modals("U0BOB")[0]
        await stack.slack.submit_modal(modal.id, {"what_was_wrong": "It ignored pagination."})
        async with asyncio.timeout(10):
            while votes(stack)[0][2] is None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        reply = await costs_reply(stack)
    assert votes(stack) == [("U0BOB", -1, "It ignored pagination.")]
    assert "👍 0 · 👎 1 · 0% satisfied" in reply and "no 👍 yet" in reply


async def costs_reply(stack: Stack) -> str:
    before = len(stack.slack.ephemerals("U0ADMIN"))
    await stack.command("costs month", user_id="U0ADMIN")
    texts = await told(stack, "U0ADMIN", before + 1)
    last = stack.slack.ephemerals("U0ADMIN")[-1]
    return texts[-1] + json.dumps(last.blocks, ensure_ascii=False)


@pytest.mark.parametrize("forged", ["up:no-such-run", "sideways:{run}", "up:", "@T0OTHER"])
async def test_a_forged_vote_is_refused_with_a_reply_and_counts_nothing(
    tmp_path: Path, forged: str
) -> None:
    async with running_stack(tmp_path) as stack:
        review = await finished_run(stack)
        click = stack.slack.click_payload(
            "C0GENERAL", review.ts, VOTE, user_id="U0BOB", choice="positive"
        )
        value = click["actions"][0]["value"]  # up:<run id>
        if forged.endswith("@T0OTHER"):  # the very click, on a run of another workspace
            path = stack.settings.database_url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as db:
                db.execute("UPDATE runs SET team_id = 'T0OTHER'")
            db.close()
        else:
            click["actions"][0]["value"] = forged.format(run=value.partition(":")[2])
        await stack.slack.send_interactive(click)
        replies = await told(stack, "U0BOB", 1)
    assert "could not be counted" in replies[0]
    assert votes(stack) == []
