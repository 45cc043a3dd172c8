"""`orchestrate-bot demo`: the whole flow offline, as a newcomer's first command.

Starts the Slack stand-in (and, unless `--live`, the Claude stand-in) on loopback, runs the
real app in Socket Mode against them with a throwaway SQLite ledger, sends
`/orchestrate <question>` as a user would, and prints the channel and its thread as they
happen, as a person would read them: the strategy, each example as it arrives, then the
review. A message edited after it was printed is printed again, as its header marked
"(edited)" and the lines that changed. `--live` talks to the real Anthropic API with
`ANTHROPIC_API_KEY`; Slack stays local. A Claude API that does not answer (no network) is
waited for `START_PATIENCE_S` at most, then the demo stops with the cause (exit 1). SIGTERM,
like Ctrl-C, interrupts the run (marked so in its thread), says what was spent, and exits
143 once everything is closed. `--web-port` turns the web view on (bot.web), signing in
through the Slack stand-in: the run's link is printed after the thread and served until
Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import blocks
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox
from bot.sandbox.slack.transcript import entries, title
from bot.services import Services, socket_mode_app
from bot.settings import Settings
from bot.startup import GaveUp

DEMO_USER, DEMO_CHANNEL = "U0ALICE", "C0GENERAL"
RUN_TIMEOUT_S = 600.0
# How long the demo waits at start for a dependency that does not answer (the real Claude
# API with --live and no network): a first command should not hang in silence.
START_PATIENCE_S = 30.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TERMINATED = 0, 1, 2, 128 + signal.SIGTERM
# The sandbox offers no notification for new or edited messages; a tenth of a second is
# faster than a reader notices and costs nothing beside the run.
POLL_S = 0.1


async def run_demo(
    question: str,
    *,
    settings: Settings,
    live: bool,
    time_scale: float,
    web_port: int | None = None,
) -> int:
    question = question.strip()
    if not question:
        print(
            "orchestrate-bot demo: give a question, e.g. "
            '`orchestrate-bot demo "Design a REST API for a social network"`',
            file=sys.stderr,
        )
        return EXIT_USAGE
    if len(question) > settings.max_question_chars:
        print(
            f"orchestrate-bot demo: the question is {len(question):,} characters; the limit "
            f"is {settings.max_question_chars:,} (ORCHESTRATE_MAX_QUESTION_CHARS).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if live:
        settings.require("ANTHROPIC_API_KEY")
    opened: list[Services] = []  # the app's services, once they are open
    async with _terminated_by_sigterm() as terminated:
        try:
            with tempfile.TemporaryDirectory(prefix="orchestrate-demo-") as tmp:
                async with _sandboxes(live, time_scale) as (slack, claude):
                    demo_settings = _demo_settings(settings, slack, claude, Path(tmp))
                    if web_port is not None:
                        demo_settings = _with_web(demo_settings, slack, web_port)
                    return await _drive(question, demo_settings, slack, opened=opened)
        except GaveUp as exc:
            hint = " (check the network and ANTHROPIC_BASE_URL)" if live else ""
            print(f"orchestrate-bot demo: {exc}{hint}; stopped.", file=sys.stderr)
            return EXIT_FAILED
        except asyncio.CancelledError:
            # Ctrl-C or SIGTERM, whenever it came: everything is closed by now; say what
            # it had cost and what became of the run.
            print(f"orchestrate-bot demo: {_interrupted(opened)}", file=sys.stderr)
            if not terminated.is_set():
                raise  # Ctrl-C: asyncio.run raises KeyboardInterrupt, exit 130
            return EXIT_TERMINATED


def _interrupted(opened: list[Services]) -> str:
    """What the interruption did: runs in flight get the drain's grace to finish, then are
    paused (a served bot resumes them at its next start; the demo's ledger is thrown away,
    so its run ends here); the metrics say which happened."""
    if not opened or not opened[0].runs.admitted:
        return "interrupted before the run started; nothing spent"
    services = opened[0]
    spent = blocks.format_usd(_spent(services))
    finished = services.metrics.registry.get_sample_value(
        "orchestrate_runs_total", {"outcome": "finished"}
    )
    ended = "it finished while stopping" if finished else "it is paused in its thread"
    return f"interrupted; {spent} spent so far; {ended}"


@contextlib.asynccontextmanager
async def _terminated_by_sigterm() -> AsyncIterator[asyncio.Event]:
    """SIGTERM cancels the demo as Ctrl-C does (so the run is interrupted and everything
    closed on the way out); the event says it came. Without this a SIGTERM kills the
    process where it stands, without a word."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    terminated = asyncio.Event()

    def stop() -> None:
        if not terminated.is_set():
            print("orchestrate-bot demo: received SIGTERM; stopping", file=sys.stderr)
            terminated.set()
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        yield terminated
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        if terminated.is_set():
            task.uncancel()


@contextlib.asynccontextmanager
async def _sandboxes(
    live: bool, time_scale: float
) -> AsyncIterator[tuple[SlackSandbox, ClaudeSandbox | None]]:
    async with SlackSandbox() as slack:
        if live:
            yield slack, None
            return
        async with ClaudeSandbox(latency=LatencyModel(time_scale=time_scale)) as claude:
            yield slack, claude


def _demo_settings(
    settings: Settings, slack: SlackSandbox, claude: ClaudeSandbox | None, tmp: Path
) -> Settings:
    demo = replace(
        settings,
        slack_bot_token=slack.bot_token,
        slack_app_token=slack.app_token,
        slack_api_url=slack.api_url,
        database_url=f"sqlite:///{tmp / 'demo.db'}",
        budget_user_daily_usd=None,
        budget_workspace_monthly_usd=None,
    )
    if claude is not None:
        demo = replace(demo, anthropic_api_key=claude.api_key, anthropic_base_url=claude.base_url)
    return demo


def _with_web(settings: Settings, slack: SlackSandbox, port: int) -> Settings:
    """The web view on 127.0.0.1:`port`, signing in through the Slack sandbox."""
    web_url = f"http://127.0.0.1:{port}"
    slack.oidc.redirect_uris.add(f"{web_url}/auth/slack")
    return replace(
        settings,
        web_url=web_url,
        web_port=port,
        slack_client_id=slack.oidc.client_id,
        slack_client_secret=slack.oidc.client_secret,
    )


async def _show_page(slack: SlackSandbox) -> None:
    """Print the run's web link and serve it until Ctrl-C (which then ends the demo as a
    finished one: the run is over; SIGTERM still interrupts as anywhere else)."""
    top = slack.messages(DEMO_CHANNEL)[-1] if slack.messages(DEMO_CHANNEL) else None
    found = re.search(r"<(http[^|>]+)\|Open in browser>", json.dumps(top.blocks)) if top else None
    if found is None:
        return
    print(
        f"Open the run in a browser: {found.group(1)}\n(sign in as Alice, who asked, or Bob; "
        "Ada is an admin, for /admin) — Ctrl-C to stop",
        flush=True,
    )
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _drive(
    question: str, settings: Settings, slack: SlackSandbox, *, opened: list[Services]
) -> int:
    async with socket_mode_app(settings, give_up_after_s=START_PATIENCE_S) as services:
        opened.append(services)
        await slack.wait_connected()
        ack = await slack.send_slash_command(
            text=question, user_id=DEMO_USER, channel_id=DEMO_CHANNEL
        )
        if ack.timed_out:
            print(
                "orchestrate-bot demo: the app did not acknowledge the command in 3 s",
                file=sys.stderr,
            )
            return EXIT_FAILED
        narrator = Narrator(slack)
        async with asyncio.TaskGroup() as tasks:
            follow = tasks.create_task(narrator.follow())
            await asyncio.wait_for(_until_done(services, slack), RUN_TIMEOUT_S)
            follow.cancel()
        if settings.web_url:  # the page is served while the app is: before it closes
            narrator.show(final=True)
            await _show_page(slack)
    narrator.show(final=True)
    print(flush=True)
    for ephemeral in slack.ephemerals(DEMO_USER):
        print(f"(only visible to you) {ephemeral.text}", file=sys.stderr)
    finished = services.metrics.registry.get_sample_value(
        "orchestrate_runs_total", {"outcome": "finished"}
    )
    return 0 if finished else 1  # refused, failed or interrupted: the shell should know


class Narrator:
    """Prints the demo channel as it changes: each message as it appears, in reading order,
    and again where it was edited (a stream, as its content changes)."""

    def __init__(self, slack: SlackSandbox) -> None:
        self._slack = slack
        self._shown: dict[str, tuple[str, ...]] = {}  # what was printed of each message
        self._titled = False

    async def follow(self) -> None:
        while True:
            self.show(final=False)
            await asyncio.sleep(POLL_S)

    def show(self, *, final: bool) -> None:
        """Print what is new since the last call (`final`: the last look, after the run)."""
        ws = self._slack.workspace
        if not self._titled:
            print(title(ws, DEMO_CHANNEL), flush=True)
            self._titled = True
        fresh: list[str] = []
        edits: list[str] = []
        for entry in entries(ws, DEMO_CHANNEL, stream_ttl_s=self._slack.stream_ttl_s):
            # A stream (the run's progress) is shown as it goes, its changes as edits: it
            # stays open for the whole run, and the thread must not wait for it.
            lines = [
                line.removesuffix(" (edited)").removesuffix(" (streaming)") for line in entry.lines
            ]
            before = self._shown.get(entry.key)
            if before is None:
                fresh += lines
            elif tuple(lines) != before:
                edits += _edit(before, lines)
            self._shown[entry.key] = tuple(lines)
        # New messages first: an edit seen in the same look happened after they arrived
        # (the strategy's progress line moves on once its examples are posted).
        if fresh or edits:
            print("\n".join(fresh + edits), flush=True)


def _edit(before: tuple[str, ...], after: list[str]) -> list[str]:
    """An edited message as a reader notices it: its first line marked "(edited)", then
    the lines it gained or that changed."""
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    changed = [
        line
        for tag, _, _, start, end in matcher.get_opcodes()
        if tag in ("replace", "insert")
        for line in after[max(start, 1) : end]
    ]
    return [f"{after[0]} (edited)", *changed]


def _spent(services: Services) -> Decimal:
    """Dollars the process's model calls have cost, as its metrics counted them."""
    total = Decimal(0)
    for family in services.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "orchestrate_model_cost_usd_total":
                total += Decimal(str(sample.value))
    return total


async def _until_done(services: Services, slack: SlackSandbox) -> None:
    # The command is acknowledged before the run is admitted: wait for the run (or for an
    # ephemeral answer saying why there is none), then for it to finish.
    # The sandbox offers no notification for ephemerals, hence the short poll.
    while not services.runs.admitted and not slack.ephemerals(DEMO_USER):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await services.runs.wait_idle()
