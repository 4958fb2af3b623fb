"""A targeted run (trigger `delta`): one organization's pending changes from both sides, in one run.

Microsoft-side changes (people added to or removed from the group by hand) are folded into Equa's state (fold.py);
Equa-side team changes are carried to the group for just the people they name, by push_run's machinery (at most
a lookup and one $batch of writes). The changes the run carried are deleted in the run's last transaction; a run
that ends otherwise leaves them for the next cycle.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.fleet.fold import fold_microsoft_changes
from equa.microsoft.fleet.models import ChangeKind
from equa.microsoft.graph import GraphClient, GraphUsage
from equa.microsoft.models import RunStatus, SyncRun
from equa.microsoft.scope import GroupScope
from equa.microsoft.sync.progress import Progress
from equa.microsoft.sync.push_run import apply_push, finish_targeted_run, load_push_inputs, plan_push
from equa.microsoft.sync.recorder import AppliedChanges, Recorder
from equa.microsoft.sync.stopping import refused_at_start

DELTA_TRIGGER = "delta"


async def run_delta(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    run: SyncRun,
    progress: Progress,
    usage: GraphUsage,
    scope: GroupScope,
) -> str:
    """The body of a delta run (execute.py claims it, beats its heartbeat and fails it on a Graph error)."""
    async with session_factory() as session:
        changes = await fleet_repository.changes_of_run(session, run.id)
        inputs = await load_push_inputs(session, run)
        linked = None if inputs is None else (inputs.sync.organization_id, inputs.sync.group_id)
        if await refused_at_start(session_factory, session, graph, scope, run.id, linked):
            return RunStatus.FAILED.value
    assert inputs is not None  # refused_at_start fails a run without inputs
    # The last word on a person wins: added then removed in one round arrives as one change, but two rounds may
    # both be pending.
    last: dict[str, str] = {}
    for change in changes:
        if change.directory_id and change.kind in (ChangeKind.ADDED.value, ChangeKind.REMOVED.value):
            last[change.directory_id] = change.kind
    added = {d for d, kind in last.items() if kind == ChangeKind.ADDED.value}
    removed = {d for d, kind in last.items() if kind == ChangeKind.REMOVED.value}

    progress.set_phase("resolving", total=len(added) + len(removed) + len(inputs.sync.team))
    folded = await fold_microsoft_changes(
        session_factory, graph, inputs.sync.organization_id, inputs.sync.group_id, added, removed
    )
    progress.advance(len(added) + len(removed))
    recorder = Recorder(session_factory, inputs.sync, run.id)
    await recorder.record(AppliedChanges(rows=folded.rows), store_links=False)
    applied = AppliedChanges()
    if inputs.sync.team or inputs.departed:
        async with session_factory() as session:
            # Exclusions the fold just recorded hold for the team changes too.
            reloaded = await load_push_inputs(session, run)
        if reloaded is not None:
            inputs = reloaded
        plan = await plan_push(graph, inputs)
        applied = await apply_push(graph, inputs.sync, plan, progress)
        await recorder.record(applied)
    progress.newly_flagged = folded.newly_flagged
    progress.set_phase("recording")
    async with session_factory() as session:
        await fleet_repository.delete_changes_of_run(session, run.id)
        status = await finish_targeted_run(session, run.id, inputs, recorder, applied, usage, progress)
        await session.commit()
    return status


def team_targets(user_ids: set[uuid.UUID]) -> list[str]:
    """The run's targets: the Equa people it is for (none when it carries Microsoft-side changes only)."""
    return sorted(str(user_id) for user_id in user_ids)
