"""Slack layer benchmark: ack latency under load, the layer's overhead, memory per run.

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.bench_slack             # ~2.5 minutes
    .venv/bin/python -m tests.benchmarks.bench_slack --reps 5 --no-realtime
    .venv/bin/python -m tests.benchmarks.bench_slack --no-acks --no-memory   # (b) alone

The real app (`socket_mode_app`: Bolt over Socket Mode, the SQLite ledger in a temporary
directory, the anthropic SDK, the product's default Settings) runs in this process, as
`orchestrate-bot serve` does. Both sandboxes run in one child process, so what Slack
measures (ack latency, when each message arrives) is timed outside the app's event loop,
and tracemalloc and RSS here see only the app. The Slack workspace gets 100 more public
channels with the bot in them and 8 more users; commands rotate over them, so runs do not
share a channel's posting pace. The Slack sandbox's rate limits (chat.update's 50 a minute,
the stream and tier limits) are lifted: the app's own pacing is what is measured. Each
measurement uses a fresh app; runs still in flight at its end are cancelled
(`Runs.drain(0)`, the shutdown path) and the app dropped.

(a) Ack latency: `Ack.latency_s` as the Slack sandbox times it (envelope sent → ack back),
    p50 and p99, for 50 commands fired at once from 50 channels and 8 users, then 10 more,
    0.1 s apart, while those runs are in flight; with the model API at realistic speed
    (latency model × 1.0: a plan takes ~10 s), fast (× 0.1: runs stream, finish and post
    while commands arrive) and stalled (every call hangs with no answer). The single runs
    of (b) give the quiet baseline.
(b) Overhead: single runs of the typical 4- and 6-component question (bench_pipeline's
    answers): command → review message posted, ÷ the pipeline's critical path (plan +
    slowest example + review call, as the Claude sandbox timed them), at latency model ×
    0.1 with the per-channel pacing scaled alike (`SLACK_POSTS_PER_S` = 10, which is the
    default 1 post/s at real speed) and raised (1,000/s, in effect off); then one run at
    real speed with the default 1 post/s checks the scaling.
(c) Memory: tracemalloc's traced bytes and VmRSS growth with 1, then 50, runs in flight
    (every model call slowed to 30 s; the default cap of 16 concurrent model calls means
    34 of the 50 runs wait for a slot), divided by the number of runs, after a warm-up run.

Warnings and errors the app logs are counted and listed at the end rather than printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import logging
import statistics
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox
from bot.services import Services, socket_mode_app
from bot.settings import Settings
from tests.benchmarks.bench_pipeline import (
    ClaudeControl,
    SandboxProcess,
    critical_path,
    machine,
    revision,
    set_typical_run,
    spread,
)

QUESTION = "Design a REST API for a social network"
CHANNELS = [f"C0BENCH{i:03d}" for i in range(100)]
USERS = [f"U0BENCH{i}" for i in range(8)]
BURST = 50
MORE = 10


# --- the child process: both sandboxes and a small bench control server -----------------


def serve_sandboxes(conn: Connection) -> None:
    asyncio.run(_serve_sandboxes(conn))


async def _serve_sandboxes(conn: Connection) -> None:
    # A client that hangs up mid-stream makes aiohttp log the handler's reset: not news.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    async with (
        # Slack's rate limits lifted (the stand-in has had them since this script was
        # written): a 429's Retry-After would be measured, not the app's own pacing.
        SlackSandbox(update_limit=None, stream_limits=False, tier_limits=False) as slack,
        ClaudeSandbox(latency=LatencyModel(time_scale=1.0)) as claude,
    ):
        for user in USERS:
            slack.workspace.add_user(user, user.lower(), f"Bench {user[-1]}")
        members = {*USERS, slack.workspace.bot_user_id}
        for channel in CHANNELS:
            slack.workspace.add_channel(channel, channel.lower(), members=members)
        runner = web.AppRunner(_bench_app(slack, claude), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        conn.send(
            {
                "bench_url": f"http://{host}:{port}",
                "claude_url": claude.base_url,
                "api_key": claude.api_key,
                "slack_api_url": slack.api_url,
                "bot_token": slack.bot_token,
                "app_token": slack.app_token,
            }
        )
        await asyncio.to_thread(conn.recv)
        await runner.cleanup()


def _bench_app(slack: SlackSandbox, claude: ClaudeSandbox) -> web.Application:
    async def slash(request: web.Request) -> web.Response:
        body = await request.json()
        sent_at = time.monotonic()
        ack = await slack.send_slash_command(
            text=body["text"], user_id=body["user_id"], channel_id=body["channel_id"]
        )
        return web.json_response(
            {"sent_at": sent_at, "latency_s": ack.latency_s, "timed_out": ack.timed_out}
        )

    async def calls(request: web.Request) -> web.Response:
        since = int(request.query.get("since", 0))
        return web.json_response(
            [
                {
                    "method": c.method,
                    "channel": c.args.get("channel"),
                    "text": str(c.args.get("text") or "")[:40],
                    "ok": c.ok,
                    "error": c.error,
                    "at": c.at,
                }
                for c in slack.calls[since:]
            ]
        )

    async def time_scale(request: web.Request) -> web.Response:
        claude.latency.time_scale = float((await request.json())["time_scale"])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/slash", slash)
    app.router.add_get("/calls", calls)
    app.router.add_post("/time_scale", time_scale)
    return app


# --- the driver, in this process --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    channel: str
    sent_at: float
    latency_s: float | None
    timed_out: bool


class Driver:
    """Acts as Slack's users and reads both sandboxes, through the child's HTTP APIs."""

    def __init__(self, session: aiohttp.ClientSession, urls: dict[str, Any]) -> None:
        self.session = session
        self.urls = urls
        self.claude = ClaudeControl(session, urls["claude_url"])
        self._turn = 0

    async def command(self, text: str = QUESTION) -> Sent:
        """`/orchestrate text` from the next bench user, in the next bench channel."""
        self._turn += 1
        channel = CHANNELS[self._turn % len(CHANNELS)]
        user = USERS[self._turn % len(USERS)]
        payload = {"text": text, "user_id": user, "channel_id": channel}
        async with self.session.post(f"{self.urls['bench_url']}/slash", json=payload) as r:
            data = await r.json()
        return Sent(channel, data["sent_at"], data["latency_s"], data["timed_out"])

    async def burst(self, count: int) -> list[Sent]:
        return list(await asyncio.gather(*(self.command() for _ in range(count))))

    async def slack_calls(self, since: int = 0) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.urls['bench_url']}/calls?since={since}") as r:
            calls: list[dict[str, Any]] = await r.json()
        return calls

    async def open_model_calls(self) -> int:
        return sum(c["finished"] is None for c in await self.claude.requests())

    async def time_scale(self, scale: float) -> None:
        async with self.session.post(
            f"{self.urls['bench_url']}/time_scale", json={"time_scale": scale}
        ) as r:
            r.raise_for_status()


@contextlib.asynccontextmanager
async def app(urls: dict[str, Any], tmp: Path, **overrides: Any) -> AsyncIterator[Services]:
    """A fresh app (and ledger file) with the product's defaults pointed at the sandboxes
    (the test harness raises the posting pace to 50/s; here it stays 1/s unless asked).
    Runs still in flight at the end are cancelled (`Runs.drain(0)`) and the app dropped."""
    settings = Settings(
        slack_bot_token=urls["bot_token"],
        slack_app_token=urls["app_token"],
        slack_api_url=urls["slack_api_url"],
        anthropic_api_key=urls["api_key"],
        anthropic_base_url=urls["claude_url"],
        database_url=f"sqlite:///{tmp / f'ledger-{next(LEDGERS)}.db'}",
        **overrides,
    )
    async with socket_mode_app(settings) as services:
        await asyncio.sleep(0.3)  # the Socket Mode hello has arrived
        try:
            yield services
        finally:
            await services.runs.drain(0)


LEDGERS = itertools.count()


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110 - nothing notifies us
            await asyncio.sleep(0.02)


async def launched(services: Services, count: int, *, since: int) -> None:
    """Wait until `count` runs were launched after `since` (a `runs.admitted` reading)."""

    async def ready() -> bool:
        return services.runs.admitted >= since + count

    await until(ready)


async def one_run(driver: Driver, services: Services) -> Sent:
    since = services.runs.admitted
    sent = await driver.command()
    await launched(services, 1, since=since)
    await services.runs.wait_idle()
    return sent


def percentile(values: Sequence[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


# --- (a) ack latency --------------------------------------------------------------------

# (label, latency model scale, stall every call?)
API_CONDITIONS = (
    ("API realistic (× 1.0)", 1.0, False),
    ("API fast (× 0.1): runs stream and post meanwhile", 0.1, False),
    ("API stalled (no answer)", 1.0, True),
)
QUIET = "1 at a time, nothing else in flight (the runs of (b))"


@dataclass
class Acks:
    rows: dict[str, list[list[float]]]  # label → one list of ms per repetition
    in_flight: dict[str, list[int]]  # label → runs in flight as each command was sent
    timed_out: int = 0

    def add(self, label: str, sent: Sequence[Sent]) -> None:
        self.timed_out += sum(s.timed_out for s in sent)
        self.rows.setdefault(label, []).append(
            [s.latency_s * 1000 for s in sent if s.latency_s is not None]
        )


async def ack_latency(driver: Driver, urls: dict[str, Any], tmp: Path, reps: int) -> Acks:
    acks = Acks({}, {})
    for _ in range(reps):
        for api, scale, stall in API_CONDITIONS:
            async with app(urls, tmp) as services:
                await driver.command("help")  # warm-up without a run: Bolt's auth.test
                await driver.time_scale(scale)
                await set_typical_run(driver.claude, 4)
                if stall:
                    await driver.claude.clear_rules()
                    await driver.claude.add_rule(fault="stall")
                since = services.runs.admitted
                acks.add(f"burst of {BURST} at once; {api}", await driver.burst(BURST))
                await launched(services, BURST, since=since)
                await asyncio.sleep(2.5)  # at realistic speed the first plans now stream
                label = f"{MORE} more, 0.1 s apart, after the burst; {api}"
                more = []
                for _ in range(MORE):
                    acks.in_flight.setdefault(label, []).append(services.runs.in_flight)
                    more.append(await driver.command())
                    await asyncio.sleep(0.1)
                acks.add(label, more)
                await launched(services, BURST + MORE, since=since)
    await driver.claude.clear_rules()
    return acks


def print_acks(acks: Acks, reps: int) -> None:
    print(
        f"\n(a) Ack latency, ms (Slack sandbox: envelope sent → ack received): median "
        f"(min-max) over {reps} repetitions; p99 of 50 is near the max, of 10 it is the max\n"
    )
    print("| commands | acks | p50 | p99 | max |")
    print("|---|---|---|---|---|")
    for label, per_rep in acks.rows.items():
        count = sum(len(r) for r in per_rep)
        print(
            f"| {label} | {count} | {spread([statistics.median(r) for r in per_rep], '.1f')} "
            f"| {spread([percentile(r, 99) for r in per_rep], '.1f')} "
            f"| {spread([max(r) for r in per_rep], '.1f')} |"
        )
    print()
    for label, counts in acks.in_flight.items():
        print(f"Runs in flight as the {label}: {min(counts)}-{max(counts)}")
    print(f"Acks that missed Slack's 3 s: {acks.timed_out}")


# --- (b) overhead of the Slack layer ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overhead:
    ack_ms: float
    ratio: float  # command → review posted, ÷ critical path
    extra_ms: float  # command → review posted, minus the critical path
    first_post_ms: float  # command → the thread's first message
    before_plan_ms: float  # command → plan call starts
    plan_to_examples_ms: float  # plan call ends → last example call starts
    examples_to_review_ms: float  # last example call ends → review call starts
    review_to_post_ms: float  # review call ends → review message posted


async def measured_run(driver: Driver, services: Services, n: int) -> Overhead:
    slack_from = len(await driver.slack_calls())
    claude_from = len(await driver.claude.requests())
    sent = await one_run(driver, services)
    posts = [
        c
        for c in await driver.slack_calls(slack_from)
        if c["method"] == "chat.postMessage" and c["channel"] == sent.channel
    ]
    calls = (await driver.claude.requests())[claude_from:]
    if sum(c["role"] == "example" for c in calls) != n or any(c["status"] != 200 for c in calls):
        raise RuntimeError(f"the run did not make {n} good example calls: {calls}")
    review_at = next(c["at"] for c in posts if c["text"].startswith("Review by"))
    critical, _ = critical_path(calls)
    plan = next(c for c in calls if c["role"] == "plan")
    review = next(c for c in calls if c["role"] == "review")
    examples = [c for c in calls if c["role"] == "example"]
    to_review = review_at - sent.sent_at
    return Overhead(
        ack_ms=(sent.latency_s or 0.0) * 1000,
        ratio=to_review / critical,
        extra_ms=(to_review - critical) * 1000,
        first_post_ms=(posts[0]["at"] - sent.sent_at) * 1000,
        before_plan_ms=(plan["started"] - sent.sent_at) * 1000,
        plan_to_examples_ms=(max(c["started"] for c in examples) - plan["finished"]) * 1000,
        examples_to_review_ms=(review["started"] - max(c["finished"] for c in examples)) * 1000,
        review_to_post_ms=(review_at - review["finished"]) * 1000,
    )


async def overhead(
    driver: Driver, urls: dict[str, Any], tmp: Path, *, scale: float, pace: float, n: int, runs: int
) -> list[Overhead]:
    async with app(urls, tmp, slack_posts_per_s=pace) as services:
        await set_typical_run(driver.claude, n)
        await driver.time_scale(0.1)
        await one_run(driver, services)  # warm-up: the new app's connections and caches
        await driver.time_scale(scale)
        return [await measured_run(driver, services, n) for _ in range(runs)]


def print_overhead(rows: list[tuple[str, list[Overhead]]]) -> None:
    print(
        "\n(b) Command → review message posted ÷ critical path (plan + slowest example + "
        "review call); other columns in ms; median (min-max)\n"
    )
    print(
        "| run | ÷ critical path | extra ms | → 1st message | → plan call "
        "| plan → last example call | examples → review call | review call → posted |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, samples in rows:

        def col(field: str, fmt: str = ".0f", s: list[Overhead] = samples) -> str:
            return spread([getattr(o, field) for o in s], fmt)

        print(
            f"| {label} | {col('ratio', '.3f')} | {col('extra_ms')} | {col('first_post_ms')} "
            f"| {col('before_plan_ms')} | {col('plan_to_examples_ms')} "
            f"| {col('examples_to_review_ms')} | {col('review_to_post_ms')} |"
        )


# --- (c) memory per run in flight -------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def footprint() -> tuple[int, int]:
    """(bytes tracemalloc traces, RSS bytes), after a full collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0], rss_bytes()


async def in_flight(driver: Driver, services: Services, count: int) -> None:
    """Start `count` more runs and wait until their model calls are open (up to the cap)."""
    since = services.runs.admitted
    await driver.burst(count)
    await launched(services, count, since=since)
    cap = services.settings.max_concurrent_calls

    async def streaming() -> bool:
        return await driver.open_model_calls() >= min(services.runs.in_flight, cap)

    await until(streaming)
    await asyncio.sleep(1.0)  # the open calls have started streaming


Memory = dict[int, list[tuple[float, float]]]  # runs → per repetition (traced, RSS) KiB/run
STALLED: list[str] = []  # memory repetitions whose runs never all opened their calls


async def memory(driver: Driver, urls: dict[str, Any], tmp: Path, reps: int) -> Memory:
    results: Memory = {1: [], BURST: []}
    for _ in range(reps):
        async with app(urls, tmp) as services:
            await set_typical_run(driver.claude, 4)
            await driver.time_scale(0.1)
            await one_run(driver, services)  # warm-up: a whole run, as a live app has had
            await driver.time_scale(1.0)
            await driver.claude.clear_rules()
            await driver.claude.add_rule(delay_s=30.0)
            tracemalloc.start()
            try:
                base = footprint()
                for count, more in ((1, 1), (BURST, BURST - 1)):
                    try:
                        await in_flight(driver, services, more)
                    except TimeoutError:  # say what was seen rather than lose the rest
                        STALLED.append(
                            f"{count} runs: after 30 s, {services.runs.in_flight} in flight "
                            f"but {await driver.open_model_calls()} model calls open "
                            f"(waited for min(in flight, {services.settings.max_concurrent_calls}))"
                        )
                        break
                    now = footprint()
                    results[count].append(
                        ((now[0] - base[0]) / count / 1024, (now[1] - base[1]) / count / 1024)
                    )
            finally:
                tracemalloc.stop()
    await driver.claude.clear_rules()
    return results


def print_memory(results: Memory) -> None:
    print("\n(c) Memory per run in flight, KiB: median (min-max)\n")
    print("| runs in flight | tracemalloc per run | RSS growth per run |")
    print("|---|---|---|")
    for count, samples in results.items():
        if not samples:
            print(f"| {count} | not measured | not measured |")
            continue
        print(
            f"| {count} | {spread([t for t, _ in samples], '.0f')} "
            f"| {spread([r for _, r in samples], '.0f')} |"
        )
    for note in STALLED:
        print(f"\nNot measured: {note}")


# --- what went wrong on the way ---------------------------------------------------------


class Tally(logging.Handler):
    """Counts the app's log records (warnings and worse) by logger and message template,
    instead of printing a traceback per cancelled run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        error = ""
        if record.exc_info and record.exc_info[1] is not None:
            error = f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self.counts[f"{record.levelname} {record.name}: {record.msg}{error}"] += 1


TALLY = Tally()
NEVER_AWAITED: Counter[str] = Counter()
_show_warning = warnings.showwarning


def count_never_awaited(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    if "was never awaited" in str(message):
        NEVER_AWAITED[str(message)] += 1
    else:
        _show_warning(message, category, filename, lineno, file, line)


def print_tally() -> None:
    gc.collect()
    lines = [f"{n} × {text}" for text, n in TALLY.counts.most_common()]
    lines += [f"{n} × RuntimeWarning: {text}" for text, n in NEVER_AWAITED.most_common()]
    print("\nLogged by the app (all while runs were being cancelled):" if lines else "")
    print("\n".join(lines))


# --- main -------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> None:
    started, code = time.perf_counter(), revision()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with (
            SandboxProcess(serve_sandboxes) as urls,
            aiohttp.ClientSession() as session,
        ):
            driver = Driver(session, urls)
            mem: Memory = await memory(driver, urls, tmp, args.reps) if args.memory else {}
            acks = await ack_latency(driver, urls, tmp, args.reps) if args.acks else Acks({}, {})
            rows = []
            for n in (4, 6):
                for label, pace in (("scaled default", 10.0), ("raised", 1000.0)):
                    samples = await overhead(
                        driver, urls, tmp, scale=0.1, pace=pace, n=n, runs=args.runs
                    )
                    rows.append((f"{n} components, × 0.1, pacing {label} ({pace:g}/s)", samples))
            if args.realtime:
                samples = await overhead(driver, urls, tmp, scale=1.0, pace=1.0, n=6, runs=1)
                rows.append(("6 components, × 1.0, pacing default (1/s)", samples))
            slack_calls = await driver.slack_calls()
    acks.rows[QUIET] = [[o.ack_ms for _, samples in rows for o in samples]]
    print(f"Machine: {machine()}; code {code}")
    print(
        "Slack and Claude sandboxes in one child process; the app in this one. "
        f"Took {time.perf_counter() - started:.0f} s."
    )
    print_acks(acks, args.reps)
    print_overhead(rows)
    if args.memory:
        print_memory(mem)
    failed = Counter(f"{c['method']} {c['error']}" for c in slack_calls if not c["ok"])
    print(f"\nSlack Web API calls: {len(slack_calls):,}; refused: {dict(failed) or 'none'}")
    print_tally()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions of (a) and (c)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per row of (b)")
    parser.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="skip (b)'s real-time check (about 30 s)",
    )
    parser.add_argument("--no-acks", dest="acks", action="store_false", help="skip (a)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip (c)")
    logging.getLogger().addHandler(TALLY)  # replaces Python's last-resort stderr handler
    warnings.simplefilter("always", RuntimeWarning)
    warnings.showwarning = count_never_awaited
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
