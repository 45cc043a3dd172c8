"""The web view over the wire: a real run, a real sign-in through the Slack sandbox, and
who may see what."""

from __future__ import annotations

from pathlib import Path

from tests.web.webstack import client, run_link, sign_in, web_stack


async def test_a_signed_in_member_sees_the_three_panes_of_a_finished_run(tmp_path: Path) -> None:
    async with web_stack(tmp_path) as stack:
        await stack.command("How do I design a rate limiter?")
        await stack.settle()
        link = run_link(stack)
        async with client() as session:
            landed = await sign_in(session, link, "U0BOB")
            assert str(landed.url) == link, (landed.status, await landed.text())
            async with session.get(link) as page:
                html = await page.text()
                assert page.status == 200
                assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
        for heading in ("Planned by Opus", "Illustrated by Haiku", "Reviewed by Sonnet"):
            assert heading in html
        assert 'data-state="done"' in html
        assert "Total $" in html and "all on Opus" in html
        assert "Signed in as Bob" in html


async def test_a_stranger_with_the_link_sees_nothing_of_the_run(tmp_path: Path) -> None:
    async with web_stack(tmp_path) as stack:
        stack.slack.workspace.add_user("U0CAROL", "carol", "Carol")
        await stack.command("A private plan", channel_id="G0TEAM")
        await stack.settle()
        link = run_link(stack, "G0TEAM")
        async with client() as anonymous, anonymous.get(link, allow_redirects=False) as first:
            assert first.status == 302
            body = await first.text()
            assert "private plan" not in body.lower() and "$" not in body
        async with client() as session:
            landed = await sign_in(session, link, "U0CAROL")
            html = await landed.text()
            assert landed.status == 404
        assert "No run to show" in html
        assert "private plan" not in html.lower() and "Total" not in html and "$" not in html
        async with client() as member:
            landed = await sign_in(member, link, "U0BOB")
            assert landed.status == 200
            assert "A private plan" in await landed.text()
