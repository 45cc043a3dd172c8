"""Durable runs as an operator meets them: the real `orchestrate-bot serve`, killed or
frozen mid-run, and what the thread, the Claude API and the ledger show afterwards.

Every instance runs as its own process against the in-process stand-ins (as
tests/ops/test_fail_fast.py does). Example calls are slowed by a Claude stand-in rule so
that some are in flight when an instance is killed; what was paid for is counted from the
stand-in's served requests and from the ledger's `calls` rows, what was posted from the
Slack stand-in's thread (each message part carries its run id and part in its metadata).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.claude.rules import RecordedRequest
from bot.sandbox.claude.server import ClaudeSandbox
from bot.sandbox.slack.payloads import message_action_payload, slash_command_payload
from bot.sandbox.slack.server import SlackSandbox
from bot.slack.poster import EVENT_TYPE
from bot.slack.shortcuts import CALLBACK_ID
from bot.slack.threads import FOOTER_EVENT, RUN_EVENT
from tests.ledger.throwaway_pg import throwaway_postgres
from tests.ops.test_fail_fast import sandboxes, stack_env

QUESTION = "Design a REST API for a social network"
CHANNEL = "C0GENERAL"
SLOW_EXAMPLE_S = 4.0
# Fast posting (the default paces a workspace at 1 post/s), no progress message (it is a
# reply of its own, edited often), and a short heartbeat and TTL so a dead instance is
# found within seconds.
FAST = {
    "ORCHESTRATE_SLACK_POSTS_PER_S": "50",
    "ORCHESTRATE_PROGRESS": "off",
    "ORCHESTRATE_HEARTBEAT_S": "1",
    "ORCHESTRATE_INSTANCE_TTL_S": "4",
}


@dataclass
class Bot:
    process: asyncio.subprocess.Process
    log: Path

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)  # a frozen one must wake to exit
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@contextlib.asynccontextmanager
async def bots() -> AsyncIterator[Callable[..., Any]]:
    """`serve(env, tmp_path, name)` starts one real `serve`; all are ended on the way out."""
    started: list[Bot] = []

    async def serve(env: dict[str, str], cwd: Path, name: str) -> Bot:
        log = cwd / f"{name}.log"
        with log.open("ab") as err:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                "--host",
                "127.0.0.1",
                env=env,
                cwd=cwd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )
        bot = Bot(process, log)
        started.append(bot)
        return bot

    try:
        yield serve
    except BaseException:
        for bot in started:  # shown by pytest with the failure: what each instance said
            print(f"--- {bot.log.name} (exit {bot.process.returncode})\n{bot.stderr[-4000:]}")
        raise
    finally:
        for bot in started:
            await bot.stop()


def replies(slack: SlackSandbox) -> tuple[Any, list[Any]]:
    top = slack.messages(CHANNEL)[0]
    return top, slack.replies(CHANNEL, top.ts)


def parts(messages: list[Any]) -> list[str]:
    """The run-message parts the thread shows (one per tagged message)."""
    return [
        str(m.metadata["event_payload"]["part"])
        for m in messages
        if m.metadata and m.metadata.get("event_type") == EVENT_TYPE and not m.deleted
    ]


def all_text(message: Any) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


def complete(slack: SlackSandbox) -> bool:
    if not slack.messages(CHANNEL):
        return False
    top, thread = replies(slack)
    footer = any(m.metadata and m.metadata.get("event_type") == FOOTER_EVENT for m in thread)
    return footer and "orchestrate_stop" not in str(top.blocks)


async def until(condition: Callable[[], bool], *, within_s: float, what: str) -> float:
    """Poll `condition` (the stand-ins have no notification for these); seconds it took."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(within_s):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within_s} s: {what}") from None
    return time.monotonic() - began


def by_role(requests: list[RecordedRequest]) -> Counter[str]:
    return Counter(str(r.role) for r in requests)


def ledger_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql))


def components_of(slack: SlackSandbox) -> int:
    top, _ = replies(slack)
    assert top.metadata and top.metadata["event_type"] == RUN_EVENT, top.metadata
    return int(top.metadata["event_payload"]["components"])


def in_flight(claude: ClaudeSandbox, role: str) -> list[RecordedRequest]:
    return [r for r in claude.messages() if r.role == role and r.finished is None]


def finished_ok(claude: ClaudeSandbox, role: str) -> list[RecordedRequest]:
    return [r for r in claude.messages() if r.role == role and r.status == 200]


async def test_a_run_killed_mid_examples_finishes_after_a_restart_paying_nothing_twice(
    tmp_path: Path,
) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        # One example answers at once, the others are still being written at the kill.
        claude.add_rule(role="example", delay_s=0.05, times=1)
        claude.add_rule(role="example", delay_s=SLOW_EXAMPLE_S)
        env = stack_env(tmp_path, slack, claude, **FAST)
        first = await serve(env, tmp_path, "first")
        await slack.wait_connected(timeout=60)
        await slack.send_slash_command(text=QUESTION, channel_id=CHANNEL)
        await until(
            lambda: finished_ok(claude, "example") and in_flight(claude, "example"),
            within_s=30,
            what="one example answered and others in flight",
        )
        await asyncio.sleep(0.3)  # the answered example's checkpoint is written
        flying = len(in_flight(claude, "example"))
        done_before = by_role([r for r in claude.messages() if r.status == 200])
        first.kill()
        await first.process.wait()
        parts_before = parts(replies(slack)[1])
        claude.clear_rules()

        await serve(env, tmp_path, "second")
        took = await until(lambda: complete(slack), within_s=15, what="the thread complete")
        await asyncio.sleep(1.0)  # anything posted twice would show by now
        top, thread = replies(slack)
        served = by_role(claude.messages())
        components = components_of(slack)
        db = tmp_path / "cli.db"
        calls = ledger_rows(db, "SELECT role, call_key FROM calls")
        runs = ledger_rows(db, "SELECT status FROM runs")

    print(f"restart to complete thread: {took:.2f} s; in flight at the kill: {flying}")
    assert done_before["plan"] == 1 and flying >= 1, (done_before, flying)
    assert served["plan"] == 1, served
    assert served["example"] <= components + flying, (served, components, flying)
    assert served["review"] == 1, served
    assert len(slack.messages(CHANNEL)) == 1  # one thread
    shown = parts(thread)
    assert len(shown) == len(set(shown)), Counter(shown)
    assert set(parts_before) <= set(shown)
    assert "orchestrate_stop" not in str(top.blocks)
    assert "Done" in str(top.blocks) + top.text, top.blocks
    footers = [m for m in thread if m.metadata and m.metadata["event_type"] == FOOTER_EVENT]
    assert len(footers) == 1 and "$" in str(footers[0].blocks), footers
    paid = Counter(role for role, _ in calls)
    assert paid["plan"] == 1 and paid["example"] == components, (paid, components)
    assert len({key for _, key in calls}) == len(calls), calls
    assert runs == [("finished",)], runs


async def two_instances(
    serve: Callable[..., Any], slack: SlackSandbox, env: dict[str, str], tmp_path: Path
) -> int:
    """Two `serve` processes on one ledger file, both connected; the open Socket Mode
    connections (the stand-in deals envelopes to them in turn, as Slack does)."""
    await serve(env, tmp_path, "one")
    await serve(env, tmp_path, "two")
    await slack.wait_connected(timeout=60, count=2)
    return sum(not ws.closed for ws in slack.socket.connections)


async def test_a_replayed_slash_command_starts_one_run_on_two_instances(tmp_path: Path) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        env = stack_env(tmp_path, slack, claude, **FAST)
        sockets = await two_instances(serve, slack, env, tmp_path)
        entry = slack.response_urls.issue(channel=CHANNEL, user="U0ALICE")
        payload = slash_command_payload(
            slack.workspace,
            text=QUESTION,
            user_id="U0ALICE",
            channel_id=CHANNEL,
            command="/orchestrate",
            response_url=entry.url,
            should_escape=False,
        )
        # The same delivery, twice on each connection (round robin), back to back.
        acks = await asyncio.gather(
            *(
                slack.send_envelope("slash_commands", payload, accepts_response_payload=True)
                for _ in range(2 * sockets)
            )
        )
        assert not any(a.timed_out for a in acks)
        await until(lambda: complete(slack), within_s=30, what="the run's thread complete")
        await asyncio.sleep(2.0)  # a second run would have posted its first message by now
        served = by_role(claude.messages())
        runs = ledger_rows(tmp_path / "cli.db", "SELECT id, status FROM runs")
        tops = slack.messages(CHANNEL)

    assert sockets >= 2
    assert len(tops) == 1, [m.text for m in tops]
    assert len(runs) == 1 and runs[0][1] == "finished", runs
    assert served["plan"] == 1, served


def thread_workflows(tmp_path: Path) -> Counter[str]:
    """The statuses of the engine's `orchestrate.thread` workflows (one per request a
    thread's queue took: a replay queues none), from its tables beside the ledger file."""
    rows = ledger_rows(
        tmp_path / "cli.db.engine.db",
        "SELECT status FROM workflow_status WHERE name = 'orchestrate.thread'",
    )
    return Counter(status for (status,) in rows)


def queue_drained(tmp_path: Path) -> bool:
    """Every queued request has been answered (any copy queued would be answered by now)."""
    workflows = thread_workflows(tmp_path)
    return bool(workflows) and set(workflows) == {"SUCCESS"}


def bot_replies(slack: SlackSandbox, top: Any) -> list[Any]:
    return [m for m in slack.replies(CHANNEL, top.ts) if m.bot_id]


# Two processes' start, a run, then the replays: about 15 s alone, several times that on
# a loaded machine.
@pytest.mark.timeout(150)
async def test_a_replayed_mention_event_is_answered_once_on_two_instances(tmp_path: Path) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        env = stack_env(tmp_path, slack, claude, **FAST)
        sockets = await two_instances(serve, slack, env, tmp_path)
        await slack.send_slash_command(text=QUESTION, channel_id=CHANNEL)
        await until(lambda: complete(slack), within_s=30, what="the run's thread complete")
        top, _ = replies(slack)
        before = len(bot_replies(slack, top))
        _, event = slack.typed_mention("@orchestrate what about auth?", thread_ts=top.ts)
        # One event (one event_id), twice on each connection, back to back: the first as
        # Slack sends it, the others as its retries (Slack resends an event it thinks was
        # not acknowledged, to any of the app's connections).
        acks = await asyncio.gather(
            *(
                slack.send_event(event, event_id="Ev0REPLAYED", retry_num=attempt or None)
                for attempt in range(2 * sockets)
            )
        )
        assert not any(a.timed_out for a in acks)
        await until(
            lambda: len(bot_replies(slack, top)) > before and queue_drained(tmp_path),
            within_s=30,
            what="the answer posted, nothing left queued",
        )
        await asyncio.sleep(1.0)  # a second answer would have been posted by now
        workflows = thread_workflows(tmp_path)
        asked = "asked: _what about auth?_"
        answers = [m for m in bot_replies(slack, top)[before:] if asked in all_text(m)]
        served = by_role(claude.messages())
        followups = ledger_rows(
            tmp_path / "cli.db", "SELECT status FROM runs WHERE parent_run_id IS NOT NULL"
        )

    assert sockets >= 2
    assert workflows == Counter({"SUCCESS": 1}), workflows
    assert len(answers) == 1, [m.text for m in bot_replies(slack, top)[before:]]
    assert served["answer"] == 1, served
    assert followups == [("finished",)], followups


@pytest.mark.timeout(150)
async def test_a_replayed_message_shortcut_starts_one_run_on_two_instances(
    tmp_path: Path,
) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        env = stack_env(tmp_path, slack, claude, **FAST)
        sockets = await two_instances(serve, slack, env, tmp_path)
        discussion = slack.workspace.post_as("U0BOB", CHANNEL, "How should we version the API?")
        entry = slack.response_urls.issue(channel=CHANNEL, user="U0ALICE")
        payload = message_action_payload(
            slack.workspace,
            discussion,
            user_id="U0ALICE",
            callback_id=CALLBACK_ID,
            response_url=entry.url,
        )
        # The same payload (one trigger_id), twice on each connection, back to back.
        acks = await asyncio.gather(
            *(slack.send_envelope("interactive", payload) for _ in range(2 * sockets))
        )
        assert not any(a.timed_out for a in acks)
        await until(
            lambda: (
                any(
                    m.metadata and m.metadata.get("event_type") == FOOTER_EVENT
                    for m in slack.replies(CHANNEL, discussion.ts)
                )
                and queue_drained(tmp_path)
            ),
            within_s=30,
            what="the run's footer in the discussion's thread, nothing left queued",
        )
        await asyncio.sleep(1.0)  # a second run would have posted its first message by now
        workflows = thread_workflows(tmp_path)
        served = by_role(claude.messages())
        runs = ledger_rows(tmp_path / "cli.db", "SELECT status, thread_ts FROM runs")
        thread = slack.replies(CHANNEL, discussion.ts)

    assert sockets >= 2
    assert workflows == Counter({"SUCCESS": 1}), workflows
    assert runs == [("finished", discussion.ts)], runs
    assert served["plan"] == 1 and served["review"] == 1, served
    assert len(slack.messages(CHANNEL)) == 1  # the discussion only: the run is in its thread
    footers = [m for m in thread if m.metadata and m.metadata["event_type"] == FOOTER_EVENT]
    assert len(footers) == 1, [m.text for m in thread]


def retry_workflows(tmp_path: Path) -> Counter[str]:
    """The statuses of the engine's `orchestrate.retry` workflows (one per retry started)."""
    rows = ledger_rows(
        tmp_path / "cli.db.engine.db",
        "SELECT status FROM workflow_status WHERE name = 'orchestrate.retry'",
    )
    return Counter(status for (status,) in rows)


RETRY = "orchestrate_retry"
# What the clicker may be told of a click on a Retry button: the click that started the
# retry, or one of its copies (while that retry runs, or after it ended).
STARTED = "↻ Retrying"
COPY = ("is already being retried", "was retried from this button already")


# Two processes' start, a run, then the replayed click: about 15 s alone, several times
# that on a loaded machine.
@pytest.mark.timeout(150)
async def test_a_replayed_retry_click_retries_once_on_two_instances(tmp_path: Path) -> None:
    """The same Retry click (one button: `container.message_ts`; one `action_ts`), twice on
    each of two processes' connections at once. Each process has its own engine (DBOS is one
    object per process), so only the workflow id the click names (derived from the button)
    and the engine's refusal to start an id twice keep the copies from retrying again."""
    async with sandboxes() as (slack, claude), bots() as serve:
        env = stack_env(tmp_path, slack, claude, **FAST)
        sockets = await two_instances(serve, slack, env, tmp_path)
        claude.add_rule(role="example", fault="refusal", times=1)  # one example fails
        await slack.send_slash_command(text=QUESTION, channel_id=CHANNEL)
        await until(lambda: complete(slack), within_s=60, what="the run's thread complete")
        top, thread = replies(slack)
        failed = [m for m in thread if "could not be illustrated" in m.text]
        assert len(failed) == 1 and RETRY in str(failed[0].blocks), [m.text for m in thread]
        examples_before = by_role(claude.messages())["example"]
        told_before = len(slack.ephemerals("U0ALICE"))
        # The retry's example takes a while, so copies arriving after the first also find
        # its workflow running (not only ended).
        claude.add_rule(role="example", delay_s=1.0, times=1)
        payload = slack.click_payload(CHANNEL, failed[0].ts, RETRY, user_id="U0ALICE")
        acks = await asyncio.gather(
            *(
                slack.send_envelope("interactive", payload, accepts_response_payload=True)
                for _ in range(2 * sockets)
            )
        )
        assert not any(a.timed_out for a in acks)

        def retried() -> list[Any]:
            return [m for m in slack.replies(CHANNEL, top.ts) if "Retried by" in m.text]

        await until(
            lambda: (
                len(slack.ephemerals("U0ALICE")) >= told_before + 2 * sockets
                and bool(retried())
                and set(retry_workflows(tmp_path)) == {"SUCCESS"}
            ),
            within_s=60,
            what="every click answered, the retry posted and its workflow ended",
        )
        await asyncio.sleep(1.0)  # a second retry would have made its call by now
        told = [e.text for e in slack.ephemerals("U0ALICE")[told_before:]]
        workflows = retry_workflows(tmp_path)
        examples = by_role(claude.messages())["example"] - examples_before
        followups = ledger_rows(
            tmp_path / "cli.db", "SELECT user_id, status FROM runs WHERE parent_run_id IS NOT NULL"
        )
        shown = retried()

    kinds = Counter(next((c for c in (STARTED, *COPY) if c in t), "something else") for t in told)
    print(f"clicks: {2 * sockets}; the clicker was told: {dict(kinds)}")
    assert sockets >= 2
    assert workflows == Counter({"SUCCESS": 1}), workflows
    assert examples == 1, examples
    assert followups == [("U0ALICE", "finished")], followups
    assert len(shown) == 1, [m.text for m in shown]
    assert len(told) == 2 * sockets, told
    assert kinds[STARTED] == 1 and kinds[STARTED] + sum(kinds[c] for c in COPY) == len(told), told


@pytest.fixture
async def postgres() -> AsyncIterator[str]:
    """A PostgreSQL cluster of this test's own (its engine schema `dbos` too); skipped as
    the other PostgreSQL tests skip without the server binaries."""
    async with throwaway_postgres() as pg:
        yield pg.url


async def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


WRITES = ("chat.postMessage", "chat.update", "chat.delete", "chat.postEphemeral")


def thread_writes(slack: SlackSandbox, *, after: float) -> list[Any]:
    """The Web API writes to the run's thread (its top message or its replies) since `after`."""
    top, thread = replies(slack)
    in_thread = {top.ts, *(m.ts for m in thread)}
    return [
        call
        for call in slack.calls
        if call.at > after
        and call.method in WRITES
        and (call.args.get("thread_ts") in in_thread or call.args.get("ts") in in_thread)
    ]


async def start_run_on_first(
    serve: Callable[..., Any], slack: SlackSandbox, env: dict[str, str], tmp_path: Path
) -> tuple[Bot, Bot]:
    """`first` alone receives the command; `second` is up before anything is in flight."""
    first = await serve(env, tmp_path, "first")
    await slack.wait_connected(timeout=60)
    await slack.send_slash_command(text=QUESTION, channel_id=CHANNEL)
    second = await serve(env, tmp_path, "second")
    await slack.wait_connected(timeout=60, count=2)
    return first, second


@pytest.mark.timeout(150)
async def test_a_run_of_an_instance_killed_on_postgres_is_finished_by_the_other(
    tmp_path: Path, postgres: str
) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        claude.add_rule(role="example", delay_s=SLOW_EXAMPLE_S * 2)
        env = stack_env(tmp_path, slack, claude, DATABASE_URL=postgres, **FAST)
        first, _ = await start_run_on_first(serve, slack, env, tmp_path)
        await until(
            lambda: bool(in_flight(claude, "example")), within_s=60, what="examples in flight"
        )
        flying = len(in_flight(claude, "example"))
        first.kill()
        killed_at = time.monotonic()
        claude.clear_rules()
        took = await until(lambda: complete(slack), within_s=20, what="the thread complete")
        await asyncio.sleep(1.0)
        _, thread = replies(slack)
        served = by_role(claude.messages())
        components = components_of(slack)
        calls = await pg_rows(postgres, "SELECT role, call_key FROM calls")
        runs = await pg_rows(postgres, "SELECT status FROM runs")

    print(f"kill to complete thread on the other instance: {took:.2f} s")
    assert time.monotonic() - killed_at > took
    assert served["plan"] == 1 and served["review"] == 1, served
    assert served["example"] <= components + flying, (served, components, flying)
    shown = parts(thread)
    assert len(shown) == len(set(shown)), Counter(shown)
    paid = Counter(role for role, _ in calls)
    assert paid["plan"] == 1 and paid["example"] == components, (paid, components)
    assert runs == [("finished",)], runs


@pytest.mark.timeout(150)
async def test_a_frozen_instance_woken_after_a_takeover_writes_nothing_more(
    tmp_path: Path, postgres: str
) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        claude.add_rule(role="example", delay_s=SLOW_EXAMPLE_S * 2)  # in flight at the SIGSTOP
        env = stack_env(tmp_path, slack, claude, DATABASE_URL=postgres, **FAST)
        first, _ = await start_run_on_first(serve, slack, env, tmp_path)
        await until(
            lambda: bool(in_flight(claude, "example")), within_s=60, what="examples in flight"
        )
        first.process.send_signal(signal.SIGSTOP)
        claude.clear_rules()
        took = await until(lambda: complete(slack), within_s=15, what="taken over, complete")
        await asyncio.sleep(15 - took)
        woken = time.monotonic()
        claude_before = len(claude.messages())
        first.process.send_signal(signal.SIGCONT)
        # Whatever it had queued (an example's answer, an edit) is due now; give it time.
        await asyncio.sleep(SLOW_EXAMPLE_S + 2)
        late_writes = thread_writes(slack, after=woken)
        late_calls = claude.messages()[claude_before:]
        exited = await asyncio.wait_for(first.process.wait(), 15)
        calls = await pg_rows(postgres, "SELECT call_key FROM calls")
        dupes = await pg_rows(
            postgres,
            "SELECT role, component_index, count(*) FROM calls "
            "GROUP BY role, component_index HAVING count(*) > 1",
        )

    print(f"SIGSTOP to complete thread on the other instance: {took:.2f} s")
    assert [(c.method, c.args.get("ts")) for c in late_writes] == []
    assert [(r.role, r.request_id) for r in late_calls] == []
    assert dupes == [] and len({key for (key,) in calls}) == len(calls), (dupes, calls)
    assert exited is not None
    assert "declared dead" in first.stderr, first.stderr[-2000:]


def thread_done(slack: SlackSandbox, top: Any) -> bool:
    thread = slack.replies(CHANNEL, top.ts)
    footer = any(m.metadata and m.metadata.get("event_type") == FOOTER_EVENT for m in thread)
    current = next(m for m in slack.messages(CHANNEL) if m.ts == top.ts)
    return footer and "orchestrate_stop" not in str(current.blocks)


RUNS_AT_SIGTERM = 25
# The thread the mentions are asked in: its run finishes before the SIGTERM (its examples are
# answered at once), so what is in flight there is the mentions' own work.
ASKED_IN = 0
# Questions (answered by the review model): none names a component, which would be redone.
FOLLOW_UPS = [
    f"what about {topic}?" for topic in ("auth", "paging", "caching", "rate limits", "errors")
]


def tagged(number: int) -> str:
    """Run `number`'s question; the tag is in every model call of the run (its examples'
    context holds the question), so a stand-in rule can pick that run's calls."""
    return f"{QUESTION} [run {number:02d}]"


def answered(slack: SlackSandbox, top: Any) -> list[int]:
    """Which of FOLLOW_UPS the bot's replies in `top`'s thread answer, in the thread's order
    (a follow-up answered twice shows twice)."""
    return [
        number
        for m in slack.replies(CHANNEL, top.ts)
        if m.bot_id
        for number, ask in enumerate(FOLLOW_UPS)
        if f"asked: _{ask}_" in all_text(m)
    ]


# About 75 s alone (45 s of it the restart, paced by chat.update's limit); over three
# times that under a load of 9-16 on 2 cores.
@pytest.mark.timeout(360)
async def test_sigterm_amid_runs_and_queued_mentions_rewrites_nothing_and_a_restart_ends_all(
    tmp_path: Path,
) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        claude.add_rule(role="example", contains=tagged(ASKED_IN), delay_s=0.05)
        claude.add_rule(role="example", delay_s=0.05, times=8)  # a few others finish at once
        claude.add_rule(role="example", delay_s=30)  # the rest are busy at the SIGTERM
        claude.add_rule(role="answer", delay_s=30)  # so is the first mention's answer
        env = stack_env(tmp_path, slack, claude, **FAST, ORCHESTRATE_DRAIN_GRACE_S="1")
        first = await serve(env, tmp_path, "first")
        await slack.wait_connected(timeout=60)
        # The asked-in run first, on its own: the process's model calls are capped
        # (ORCHESTRATE_MAX_CONCURRENT_CALLS, 16), and the 24 others' slow examples would
        # hold every slot before the first mention's answer could take one.
        await slack.send_slash_command(text=tagged(ASKED_IN), channel_id=CHANNEL)
        await until(lambda: complete(slack), within_s=60, what="the asked-in run finished")
        asked_in = slack.messages(CHANNEL)[0]
        # Five mentions in its thread, in this order: the first is in its model call when
        # the others are posted, so they wait their turn in the thread's queue.
        for number, ask in enumerate(FOLLOW_UPS):
            _, ack = await slack.mention(text=f"@orchestrate {ask}", thread_ts=asked_in.ts)
            assert not ack.timed_out
            if number == 0:
                await until(
                    lambda: bool(in_flight(claude, "answer")),
                    within_s=30,
                    what="the first mention's answer in flight",
                )
        for number in range(1, RUNS_AT_SIGTERM):
            await slack.send_slash_command(text=tagged(number), channel_id=CHANNEL)
        await until(
            lambda: (
                len(slack.messages(CHANNEL)) == RUNS_AT_SIGTERM
                and len(in_flight(claude, "example")) >= 10
            ),
            within_s=60,
            what="every run's first message, and examples in flight",
        )
        await asyncio.sleep(1.0)
        db = tmp_path / "cli.db"
        before = dict(ledger_rows(db, "SELECT id, finished_at FROM runs WHERE status <> 'running'"))
        answers_flying = len(in_flight(claude, "answer"))
        answered_before = answered(slack, asked_in)
        first.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(first.process.wait(), 60)
        after_stop = dict(
            ledger_rows(db, "SELECT id, status FROM runs WHERE parent_run_id IS NULL")
        )
        paused = [
            m for m in slack.messages(CHANNEL) if "Paused while the bot restarts" in str(m.blocks)
        ]
        # What the engine kept of the mentions: the one cut off in its call, the others queued.
        mentions_at_stop = dict(
            ledger_rows(
                tmp_path / "cli.db.engine.db",
                "SELECT status, count(*) FROM workflow_status"
                " WHERE name = 'orchestrate.thread' GROUP BY status",
            )
        )

        claude.clear_rules()
        await serve(env, tmp_path, "second")
        tops = slack.messages(CHANNEL)
        took = await until(
            lambda: (
                all(thread_done(slack, top) for top in tops)
                and len(answered(slack, asked_in)) >= len(FOLLOW_UPS)
            ),
            within_s=180,
            what="all threads complete and every mention answered after the restart",
        )
        await asyncio.sleep(2.0)  # an answer posted twice would show by now
        order = answered(slack, asked_in)
        ended = dict(ledger_rows(db, "SELECT id, finished_at FROM runs"))
        statuses = Counter(
            status
            for (status,) in ledger_rows(db, "SELECT status FROM runs WHERE parent_run_id IS NULL")
        )
        followups = Counter(
            status
            for (status,) in ledger_rows(
                db, "SELECT status FROM runs WHERE parent_run_id IS NOT NULL"
            )
        )
        answer_calls = by_role(claude.messages())["answer"]
        texts = " ".join(
            str(m.blocks) + m.text for top in tops for m in slack.replies(CHANNEL, top.ts)
        )

    print(
        f"finished before SIGTERM: {len(before)}; paused: {len(paused)}; answer calls in"
        f" flight at the SIGTERM: {answers_flying}, made in all: {answer_calls};"
        f" restart to all {RUNS_AT_SIGTERM} threads"
        f" complete and {len(FOLLOW_UPS)} mentions answered: {took:.1f} s"
    )
    assert code == 0
    assert len(after_stop) == RUNS_AT_SIGTERM
    assert set(after_stop.values()) <= {"finished", "running"}, after_stop  # none interrupted
    # Each paused run's first message is edited to say so, as far as chat.update's workspace
    # limit (Tier 3) and the one-second grace allow (on a loaded machine, none may go out);
    # the restart edits every one to its end.
    assert len(paused) <= sum(s == "running" for s in after_stop.values())
    assert {run: ended[run] for run in before} == before  # 0 finished runs rewritten
    assert statuses == Counter({"finished": RUNS_AT_SIGTERM}), statuses
    assert len(slack.messages(CHANNEL)) == RUNS_AT_SIGTERM  # nothing posted twice at the top
    assert "interrupted" not in texts.lower()
    # The mentions: none answered before the SIGTERM (the first was in its call), each
    # answered once after it, in the order sent; the cut-off call is the only one made twice.
    assert answered_before == [] and answers_flying == 1, (answered_before, answers_flying)
    assert mentions_at_stop == {"PENDING": 1, "ENQUEUED": len(FOLLOW_UPS) - 1}, mentions_at_stop
    assert order == list(range(len(FOLLOW_UPS))), order
    assert followups == Counter({"finished": len(FOLLOW_UPS)}), followups
    assert len(FOLLOW_UPS) <= answer_calls <= len(FOLLOW_UPS) + answers_flying, answer_calls


# What a Stop click does on an instance that does not run the run (`Runs.stop`, less the
# fast path): the request in the ledger, then the workflow cancelled in the engine. Run as
# a process of its own; prints the (system-wide) monotonic times at the click and once
# the cancel returned.
STOPPER = """
import asyncio, sys, time
from dbos import DBOS
from bot.ledger import open_ledger
from bot.slack.engine import ENGINE_VERSION, system_database_url

url, run_id, by = sys.argv[1:4]
clicked = time.monotonic()

async def ask() -> None:
    async with open_ledger(url) as ledger:
        assert await ledger.interactions.request_stop(run_id, by)

asyncio.run(ask())
DBOS(config={"name": "orchestrate", "system_database_url": system_database_url(url),
             "executor_id": "stopper", "application_version": ENGINE_VERSION,
             "log_level": "WARNING"})
DBOS.launch()
DBOS.cancel_workflow(run_id)
print(clicked, time.monotonic(), flush=True)
DBOS.destroy(workflow_completion_timeout_sec=0)
"""


async def test_a_stop_from_another_process_closes_the_calls_in_flight_within_a_second_or_so(
    tmp_path: Path,
) -> None:
    async with sandboxes() as (slack, claude), bots() as serve:
        # Slow enough to be in flight however long the stopper takes to start.
        claude.add_rule(role="example", delay_s=60.0)
        env = stack_env(tmp_path, slack, claude, **FAST)
        await serve(env, tmp_path, "owner")
        await slack.wait_connected(timeout=60)
        await slack.send_slash_command(text=QUESTION, channel_id=CHANNEL)
        await until(lambda: in_flight(claude, "example"), within_s=30, what="examples in flight")
        db = tmp_path / "cli.db"
        [(run_id,)] = ledger_rows(db, "SELECT id FROM runs")
        stopper = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            STOPPER,
            f"sqlite:///{db}",
            run_id,
            "U0ADMIN",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(stopper.communicate(), 60)
        assert stopper.returncode == 0
        clicked, cancelled = (float(t) for t in out.decode().split()[-2:])
        await until(lambda: complete(slack), within_s=15, what="the run's thread closed")
        examples = [r for r in claude.messages() if r.role == "example"]
        closed = max(r.finished or 0.0 for r in examples) - clicked
        _, thread = replies(slack)
        runs = ledger_rows(db, "SELECT status, error FROM runs")
        recorded = ledger_rows(db, "SELECT count(*) FROM calls")

    print(
        f"stop in another process -> calls closed: {closed:.3f} s"
        f" (the cancel itself returned after {cancelled - clicked:.3f} s)"
    )
    assert all(r.finished is not None for r in examples)
    assert closed < 2.0, closed  # DBOS's watcher polls once a second
    assert "Stopped by <@U0ADMIN>" in thread[-1].text
    assert runs == [("interrupted", "stopped by U0ADMIN")], runs
    assert recorded == [(len(claude.messages()),)], recorded
