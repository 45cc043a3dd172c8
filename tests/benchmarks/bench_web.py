"""Web view benchmark: a finished 6-example run's page served and painted, and how soon an
open page shows an example after it arrives.

Run from the repository root (not collected by pytest; needs /usr/bin/chromium):

    .venv/bin/python -m tests.benchmarks.bench_web            # ~1 minute
    .venv/bin/python -m tests.benchmarks.bench_web --loads 50

The real app runs in Socket Mode with the web view on its own port (`WEB_PORT`), against
both sandboxes in this process, with bench_pipeline's typical answers for 6 components
(600 to 1,000 tokens of Markdown and code each, a full review). Sign-in is the real Sign in
with Slack flow through the Slack sandbox.

(a) Served: time to first byte of `GET /runs/<id>` (headers and the first chunk of the
    body), an aiohttp client on the same loop, `--loads` times after one warm-up.
(b) Painted: headless Chromium (Playwright) loads the page `--loads // 5` times;
    `responseStart` (first byte as the browser saw it) and the time from navigation start
    until a frame after every pane (Strategy, Examples with all 6 examples, Review, the
    bill) is in the document (two animation frames after `load`).
(c) Live: a page opened while a run works (latency model × 1.0, examples staggered); a
    MutationObserver in the page stamps `Date.now()` when each example appears; the delay is
    that stamp minus the example's `recorded_at` in the ledger (same machine clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from playwright.async_api import async_playwright

from tests.benchmarks.bench_pipeline import COMPONENTS, example_text, plan_text, review_text
from tests.harness import Stack
from tests.web.test_browser import ARGS, CHROMIUM
from tests.web.webstack import client, run_link, sign_in, web_stack

N = 6


def typical_rules(stack: Stack) -> None:
    names = [name for name, _ in COMPONENTS[:N]]
    stack.claude.clear_rules()
    stack.claude.add_rule(role="plan", text=plan_text(N))
    for index, name in enumerate(names):
        tokens = 600 + round(400 * index / (N - 1))
        stack.claude.add_rule(
            role="example", contains=f'<component name="{name}">', text=example_text(name, tokens)
        )
    stack.claude.add_rule(role="review", text=review_text(names))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def served(link: str, loads: int) -> list[float]:
    async with client() as session:
        await sign_in(session, link, "U0ALICE")
        timings = []
        for n in range(loads + 1):
            started = time.perf_counter()
            async with session.get(link) as response:
                await response.content.readany()
                took = time.perf_counter() - started
                await response.read()
            if n:
                timings.append(took * 1000)
        return timings


PAINTED = """() => new Promise(resolve => {
  const done = () => requestAnimationFrame(() => requestAnimationFrame(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    resolve({ttfb: nav.responseStart - nav.startTime, painted: performance.now(),
             examples: document.querySelectorAll('article.example-done').length,
             panes: document.querySelectorAll('section.pane').length,
             bill: !!document.querySelector('footer.bill')});
  }));
  if (document.readyState === 'complete') done(); else addEventListener('load', done);
})"""

WATCH = """() => {
  window.__shown = {};
  const mark = () => document.querySelectorAll('article.example-done').forEach(a => {
    if (!(a.id in window.__shown)) window.__shown[a.id] = Date.now() / 1000;
  });
  mark();
  new MutationObserver(mark).observe(document.getElementById('main'),
                                     {childList: true, subtree: true});
}"""


async def painted(browser_link: str, loads: int) -> tuple[list[float], list[float]]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await (await browser.new_context()).new_page()
        await page.goto(browser_link)
        await page.click('button[value="U0ALICE"]')
        await page.wait_for_load_state("load")
        ttfb, paint = [], []
        for _ in range(loads):
            await page.goto(browser_link, wait_until="commit")
            result = await page.evaluate(PAINTED)
            assert result["examples"] == N and result["panes"] == 3 and result["bill"], result
            ttfb.append(result["ttfb"])
            paint.append(result["painted"])
        await browser.close()
        return ttfb, paint


async def live(tmp: Path) -> list[float]:
    async with web_stack(tmp / "live", time_scale=1.0) as stack, async_playwright() as p:
        typical_rules(stack)
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await (await browser.new_context()).new_page()
        await stack.command("Design a REST API for a social network")
        while not stack.slack.messages("C0GENERAL"):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await page.goto(run_link(stack))
        await page.click('button[value="U0ALICE"]')
        await page.wait_for_selector("#main")
        await page.evaluate(WATCH)
        await stack.settle()
        await asyncio.sleep(1.0)
        shown: dict[str, float] = await page.evaluate("window.__shown")
        await browser.close()
        db = sqlite3.connect(tmp / "live" / "ledger.db")
        rows = db.execute(
            "SELECT body, recorded_at FROM run_events WHERE kind = 'example'"
        ).fetchall()
        delays = []
        for body, recorded in rows:
            key = f"example-{json.loads(body)['index'] + 1}"
            if key in shown:  # examples in before the page opened are not a live delay
                delays.append(max(shown[key] - recorded, 0.0) * 1000)
        return delays


async def main(loads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        async with web_stack(Path(tmp), time_scale=0.01) as stack:
            typical_rules(stack)
            await stack.command("Design a REST API for a social network")
            await stack.settle()
            link = run_link(stack)
            server = await served(link, loads)
            ttfb, paint = await painted(link, max(loads // 5, 3))
        delays = await live(Path(tmp))
    print(
        f"(a) served, {len(server)} loads: TTFB p50 {pct(server, 0.5):.1f} ms, "
        f"p95 {pct(server, 0.95):.1f} ms (target < 100 ms)"
    )
    print(
        f"(b) Chromium, {len(paint)} loads: TTFB p50 {statistics.median(ttfb):.1f} ms; "
        f"three panes painted p50 {statistics.median(paint):.0f} ms, "
        f"max {max(paint):.0f} ms (target < 1,000 ms)"
    )
    if delays:
        print(
            f"(c) live, {len(delays)} examples: delay p50 {statistics.median(delays):.0f} ms, "
            f"max {max(delays):.0f} ms (target ≤ 500 ms)"
        )
    else:
        print("(c) live: no example arrived after the page opened")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=50)
    asyncio.run(main(parser.parse_args().loads))
