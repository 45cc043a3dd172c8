"""The web view in a real browser: headless Chromium (Debian's, /usr/bin/chromium, which
.ci/run installs) driven by Playwright. Screenshots are kept in tests/artifacts/web/."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.harness import Stack
from tests.web.webstack import run_link, web_stack

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
    ),
]
HOSTILE = (
    "Before <script>window.__pwned = 'script'</script> and "
    '<img src="x" onerror="window.__pwned = \'onerror\'"> and '
    "[click me](javascript:window.__pwned='link') and "
    "[data](data:text/html,<script>window.__pwned='data'</script>) and "
    "<a href=\"javascript:window.__pwned='raw'\" onclick=\"window.__pwned='onclick'\">raw</a>.\n\n"
    "```html\n<script>window.__pwned = 'code'</script>\n```\n"
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def signed_in_page(browser: Browser, link: str, user_id: str) -> Page:
    """A fresh browser context that opened `link` and signed in as `user_id` in the sandbox."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await page.goto(link)
    await page.click(f'button[value="{user_id}"]')
    await page.wait_for_load_state("load")
    return page


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_a_member_signs_in_and_sees_the_three_panes_of_a_real_run(
    tmp_path: Path, browser: Browser
) -> None:
    async with web_stack(tmp_path) as stack:
        await stack.command("How should a small team adopt code review?")
        await stack.settle()
        page = await signed_in_page(browser, run_link(stack), "U0ALICE")
        assert page.url == run_link(stack)
        for pane, by in (("strategy", "Opus"), ("examples", "Haiku"), ("review", "Sonnet")):
            heading = page.locator(f"#{pane}-h")
            assert by in await heading.inner_text()
        assert await page.locator("article.example-done").count() >= 2
        assert await page.locator("#pane-review .verdict").count() >= 2
        assert "Total $" in await page.locator("footer.bill").inner_text()
        await shot(page, "finished-run")
        await page.set_viewport_size({"width": 420, "height": 900})
        boxes = [await page.locator(f"#pane-{p}").bounding_box() for p in ("strategy", "review")]
        assert boxes[0] and boxes[1] and boxes[1]["y"] > boxes[0]["y"]  # stacked when narrow
        await shot(page, "finished-run-narrow")


async def test_an_open_page_fills_live_as_the_run_works(tmp_path: Path, browser: Browser) -> None:
    async with web_stack(tmp_path, time_scale=0.5) as stack:
        await stack.command("Plan a migration to PostgreSQL")
        await _until_first_message(stack)
        page = await signed_in_page(browser, run_link(stack), "U0ALICE")
        states = {await page.locator(".state").get_attribute("data-state")}
        assert states & {"planning", "illustrating"}
        await page.wait_for_selector("article.example-done", timeout=30_000)
        await shot(page, "live-run-partway")
        states.add(await page.locator(".state").get_attribute("data-state"))
        await page.wait_for_selector('[data-state="done"]', timeout=60_000)
        await stack.settle()
        assert await page.locator("article.example-pending").count() == 0
        assert "Total $" in await page.locator("footer.bill").inner_text()
        await shot(page, "live-run-done")


async def test_a_person_who_cannot_see_the_channel_is_refused(
    tmp_path: Path, browser: Browser
) -> None:
    async with web_stack(tmp_path) as stack:
        stack.slack.workspace.add_user("U0CAROL", "carol", "Carol")
        await stack.command("Our secret roadmap", channel_id="G0TEAM")
        await stack.settle()
        page = await signed_in_page(browser, run_link(stack, "G0TEAM"), "U0CAROL")
        text = await page.locator("body").inner_text()
        assert "No run to show" in text
        assert "roadmap" not in text.lower() and "$" not in text
        await shot(page, "refused")


async def test_hostile_model_output_executes_nothing(tmp_path: Path, browser: Browser) -> None:
    async with web_stack(tmp_path) as stack:
        stack.claude.add_rule(role="example", text=HOSTILE)
        await stack.command("<script>window.__pwned='question'</script> [q](javascript:alert(1))")
        await stack.settle()
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
        await page.goto(run_link(stack))
        await page.click('button[value="U0ALICE"]')
        await page.wait_for_selector("article.example-done")
        for link in await page.locator("main a").all():
            href = await link.get_attribute("href") or ""
            assert not href.lower().startswith(("javascript:", "data:")), href
        for anchor in await page.locator("main a[href^='http']").all():
            await anchor.evaluate("a => a.removeAttribute('href')")  # stay on the page
        for anchor in await page.locator("main a").all():
            await anchor.click(no_wait_after=True)
        assert await page.evaluate("window.__pwned") is None
        assert (
            await page.locator("main script, main img, main [onerror], main [onclick]").count() == 0
        )
        assert dialogs == []
        assert "window.__pwned" in await page.locator("main").inner_text()  # shown as text
        await shot(page, "hostile-output")


async def _until_first_message(stack: Stack) -> None:
    deadline = time.monotonic() + 20
    while not stack.slack.messages("C0GENERAL") and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


async def test_an_admin_sees_the_spend_charts_with_their_numbers(
    tmp_path: Path, browser: Browser
) -> None:
    async with web_stack(tmp_path) as stack:
        for question in ("Cache an API", "Shard a database"):
            await stack.command(question)
        await stack.settle(runs=2)
        admin = f"{stack.settings.web_url}/admin?days=7"
        page = await signed_in_page(browser, admin, "U0ADMIN")
        assert await page.locator("figure.chart svg").count() == 6
        spend = page.locator("#chart-spend details")
        await spend.locator("summary").click()
        assert "claude-haiku-5-5" in await spend.inner_text()
        assert await page.locator("#chart-channels td").first.inner_text() != "$0.0000"
        await shot(page, "admin-dashboard")
