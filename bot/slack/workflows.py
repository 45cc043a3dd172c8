"""The workflows the engine runs, registered with DBOS when this module is imported.

A workflow's arguments are plain data (kept by the engine, to resume it anywhere); what it
works with (the pipeline, the poster, the ledger) is the run registry of the process it
runs in, found by name (`host`): every instance registers its own at start.
"""

from __future__ import annotations

from dbos import DBOS

from bot.slack.conversations import Conversations, ThreadOrder
from bot.slack.runs import RetryOrder, RunOrder, Runs

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
    found = _hosts.get(name)
    if found is None:
        if not _hosts:
            raise RuntimeError("no run registry in this process")
        found = list(_hosts.values())[-1]
    return found


@DBOS.workflow(name="orchestrate.run")
async def run_workflow(order: RunOrder) -> str:
    """One `/orchestrate` run (a run in a thread, a re-plan): see `Runs.execute`."""
    return await host(order.host).execute(order)


@DBOS.workflow(name="orchestrate.retry")
async def retry_workflow(order: RetryOrder) -> str:
    """A Retry of a failed example, a follow-up of run `order.run_id` (`Runs.execute_retry`)."""
    return await host(order.host).execute_retry(order)


@DBOS.workflow(name="orchestrate.thread")
async def thread_workflow(order: ThreadOrder) -> str:
    """A mention or a shortcut in a thread, in its turn (the threads queue, one partition per
    thread): a run in the thread, or a follow-up of its run (`Conversations.answer`)."""
    found = _conversations.get(order.host)
    if found is None:
        if not _conversations:
            raise RuntimeError("no conversations registry in this process")
        found = list(_conversations.values())[-1]
    return await found.answer(order)
