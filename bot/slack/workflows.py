"""The workflows the engine runs, registered with DBOS when this module is imported.

A workflow's arguments are plain data (kept by the engine, to resume it anywhere); what it
works with (the pipeline, the poster, the ledger) is the run registry of the process it
runs in, found by name (`host`): every instance registers its own at start.
"""

from __future__ import annotations

from dbos import DBOS

from bot.slack.runs import RunOrder, Runs

_hosts: dict[str, Runs] = {}


def register(runs: Runs) -> None:
    """Make `runs` the registry that workflows started or resumed here run on."""
    _hosts[runs.host] = runs
    runs.workflow = run_workflow


def unregister(runs: Runs) -> None:
    if _hosts.get(runs.host) is runs:
        del _hosts[runs.host]


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
