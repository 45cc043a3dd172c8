"""The workflows the engine runs, registered with DBOS when this module is imported.

A workflow's arguments are plain data (kept by the engine, to resume it anywhere); what it
works with (the pipeline, the poster, the ledger) is the run registry of the process it
runs in, found by name (`host`): every instance registers its own at start.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TypeVar

from dbos import DBOS, ScheduleInput
from dbos import error as dbos_error

from bot.settings import SettingsError
from bot.slack.budget_alerts import DIGEST_SCHEDULE, BudgetAlert, BudgetWatch, Digest
from bot.slack.conversations import Conversations, ThreadOrder
from bot.slack.retries import RetryOrder
from bot.slack.runs import RunOrder, Runs

R = TypeVar("R")
_hosts: dict[str, Runs] = {}
_conversations: dict[str, Conversations] = {}


def register(runs: Runs) -> None:
    """Make `runs` the registry that workflows started or resumed here run on."""
    _hosts[runs.host] = runs
    runs.workflow = run_workflow
    runs.retry_workflow = retry_workflow


def unregister(runs: Runs) -> None:
    if _hosts.get(runs.host) is runs:
        del _hosts[runs.host]
    _conversations.pop(runs.host, None)


def register_conversations(conversations: Conversations, runs: Runs) -> None:
    """Make `conversations` answer the thread workflows queued or resumed on `runs`'s host."""
    _conversations[runs.host] = conversations
    conversations.workflow = thread_workflow


def host(name: str) -> Runs:
    """The registry a workflow was started on, if it is in this process; else (a workflow
    resumed after a restart, or taken over) the one registered last."""
    return _registered(_hosts, name, "run")


def _registered(registries: dict[str, R], name: str, what: str) -> R:
    """`registries[name]`, else the one registered last (`host`)."""
    if name in registries:
        return registries[name]
    if not registries:
        raise RuntimeError(f"no {what} registry in this process")
    return list(registries.values())[-1]


@DBOS.workflow(name="orchestrate.run")
async def run_workflow(order: RunOrder) -> str:
    """One `/orchestrate` run (a run in a thread, a re-plan): see `Runs.execute`."""
    return await host(order.host).execute(order)


# ---- The weekly digest and budget alerts (issue 19): scheduled / once-per-id workflows ----
# Like runs, they work with the objects of the process they run in, found here: every
# instance registers its own at start (the last registered is used by a workflow resumed or
# fired here, whichever stack of this process started it: they share one ledger).
_alerts: list[tuple[BudgetWatch, Digest]] = []


def register_alerts(watch: BudgetWatch, digest: Digest) -> None:
    _alerts.append((watch, digest))
    watch.workflow = budget_alert_workflow


def unregister_alerts(watch: BudgetWatch, digest: Digest) -> None:
    with contextlib.suppress(ValueError):
        _alerts.remove((watch, digest))


def _alerts_host() -> tuple[BudgetWatch, Digest]:
    if not _alerts:
        raise RuntimeError("no budget watch or digest registered in this process")
    return _alerts[-1]


@DBOS.workflow(name="orchestrate.budget_alert")
async def budget_alert_workflow(alert: BudgetAlert) -> int:
    """One threshold alert, once per team, month and threshold (its id): see `BudgetWatch`."""
    return await _alerts_host()[0].send(alert)


@DBOS.workflow(name="orchestrate.weekly_digest")
async def digest_workflow(when: datetime, context: object) -> None:
    """The digest of the week before `when`, fired by the schedule `DIGEST_SCHEDULE` once per
    scheduled time across instances (the workflow's id is `sched-<name>-<when>`)."""
    await _alerts_host()[1].post_week(when)


async def schedule_digest(cron: str) -> None:
    """Create the digest's schedule, or bring it up to date: every instance, at every start
    (the schedule is kept in the engine's tables; the upsert keeps when it last fired, and a
    week missed while every instance was down is fired at the next start)."""
    schedule: ScheduleInput = {
        "schedule_name": DIGEST_SCHEDULE,
        "workflow_fn": digest_workflow,
        "schedule": cron,
        "automatic_backfill": True,
    }
    try:
        await DBOS.apply_schedules_async([schedule])
    except dbos_error.DBOSException as exc:
        if "cron" not in str(exc).lower():
            raise
        raise SettingsError(f"ORCHESTRATE_DIGEST_CRON: {cron!r} is not a cron expression") from None


@DBOS.workflow(name="orchestrate.retry")
async def retry_workflow(order: RetryOrder) -> str:
    """A Retry of a failed example, a follow-up of run `order.run_id` (`Retries.execute`)."""
    return await host(order.host).retries.execute(order)


@DBOS.workflow(name="orchestrate.thread")
async def thread_workflow(order: ThreadOrder) -> str:
    """A mention or a shortcut in a thread, in its turn (the threads queue, one partition per
    thread): a run in the thread, or a follow-up of its run (`Conversations.answer`)."""
    return await _registered(_conversations, order.host, "conversations").answer(order)
