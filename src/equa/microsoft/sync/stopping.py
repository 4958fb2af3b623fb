"""A run that stops early on purpose: nothing to run against, its group unlinked while it ran, or gone.

- Refused at the start: the organization has no group linked any more, or the group left the scope
  (MS_GROUP_SCOPE) since it was linked; the run fails before it sends anything (full and targeted runs alike).

- Unlinked: before each chunk of writes the run asks whether the organization is still linked to the group it
  writes to; once it is not, it sends nothing more. What is left of the plan gets the outcome `cancelled`, and the
  run ends `cancelled` (what it had already changed stays changed, and recorded).
- Missing: when listing the group answers 404, the same rule as every read of the linked group decides
  (groups/deleted.py): a deleted group, or one linked too long ago for replication to explain the 404, clears the
  link and fails the run with `microsoft_group_missing`; a new group not among deleted items is still replicating,
  and the run retries as before.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.errors import AppError
from equa.microsoft import repository
from equa.microsoft.graph import GraphClient, GraphNotFound, GraphUsage
from equa.microsoft.groups import group_gone, linked_group_id
from equa.microsoft.models import Outcome, RunStatus, SyncRun
from equa.microsoft.scope import GroupScope
from equa.microsoft.sync.lifecycle import KeptWork, finish_failed, finish_run, graph_stats_json
from equa.microsoft.sync.plan import PlannedMember, PlannedRemoval
from equa.microsoft.sync.progress import Progress
from equa.microsoft.sync.recorder import AppliedChanges, OutcomeRow, Recorder, chunks

log = logging.getLogger("equa.microsoft.sync")
# Outcome rows written per transaction.
ROWS_PER_WRITE = 1600

NOT_SENT = "The group was unlinked before this change was sent."
UNLINKED_CODE = "group_unlinked"
UNLINKED_ACTION = (
    "Nothing to undo. Link a group (or the same one again) and sync to bring it in step with the team."
)


async def refused_at_start(
    session_factory: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    graph: GraphClient,
    scope: GroupScope,
    run_id: uuid.UUID,
    linked: tuple[uuid.UUID, str] | None,
) -> bool:
    """Fail the run and say True when it has nothing to run against: no group linked (`linked` is None), or a
    group outside the scope. Scheduled runs are checked too: a group that left the scope is not touched."""
    if linked is None:
        await finish_failed(
            session_factory,
            run_id,
            "group_not_linked",
            "The organization no longer has a Microsoft 365 group linked.",
            "Link a group, then sync again.",
        )
        return True
    try:
        await scope.check(session, graph, *linked)
    except AppError as refused:
        await finish_failed(session_factory, run_id, refused.code, refused.message, refused.action)
        return True
    return False


class RunCancelled(Exception):
    """The group was unlinked while the run ran; `rows` are the cancelled outcomes of what was left."""

    def __init__(self, rows: list[OutcomeRow]) -> None:
        super().__init__(f"{len(rows)} change(s) not sent: the group was unlinked")
        self.rows = rows


def cancelled_rows(adds: list[PlannedMember], removals: list[PlannedRemoval]) -> list[OutcomeRow]:
    rows = [
        OutcomeRow(
            outcome=Outcome.CANCELLED.value,
            user_id=p.user_id,
            directory_id=p.directory_id,
            email=p.email,
            display_name=p.display_name,
            message=NOT_SENT,
        )
        for p in adds
    ]
    rows += [
        OutcomeRow(
            outcome=Outcome.CANCELLED.value,
            user_id=r.user_id,
            directory_id=r.directory_id,
            email=r.email,
            message=NOT_SENT,
        )
        for r in removals
    ]
    return rows


def unlinked_message(cancelled: int) -> str:
    return (
        f"The group was unlinked while the sync ran; it stopped before its next change, and {cancelled} "
        f"change{'s' if cancelled != 1 else ''} {'were' if cancelled != 1 else 'was'} not made."
    )


async def raise_if_group_gone(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    organization_id: uuid.UUID,
    group_id: str,
    error: GraphNotFound,
) -> None:
    """After listing the group answered 404: raise GroupMissing (the link cleared and committed) when the group is
    deleted or gone for good; return when it may still be replicating (or the organization links another group
    now), so that the caller retries."""
    async with session_factory() as session:
        organization = await repository.organization(session, organization_id)
        if organization is None or linked_group_id(organization) != group_id:
            return
        missing = await group_gone(
            session, graph, organization, actor_id=None, request_id=error.request_id, found_by="sync run"
        )
        if missing is None:
            return
        await session.commit()
    raise missing


async def finish_cancelled(
    session_factory: async_sessionmaker[AsyncSession],
    run: SyncRun,
    recorder: Recorder,
    kept: KeptWork,
    usage: GraphUsage,
    progress: Progress,
    cancelled: RunCancelled,
) -> str:
    """End a run whose group was unlinked: what was left is recorded `cancelled`, and so is the run."""
    for rows in chunks(cancelled.rows, ROWS_PER_WRITE):
        await recorder.record(AppliedChanges(rows=rows), store_links=False)
    counts = dict(recorder.counts)
    for outcome, number in kept.counts.items():
        counts[outcome] = counts.get(outcome, 0) + number
    log.info(
        "sync run %s stopped: the group was unlinked (%d change(s) not sent)", run.id, len(cancelled.rows)
    )
    async with session_factory() as session:
        finished = await finish_run(
            session,
            run.id,
            status=RunStatus.CANCELLED.value,
            counts=counts,
            graph_stats=graph_stats_json(usage, run.graph_stats),
            done=progress.done,
            total=progress.total,
            error_code=UNLINKED_CODE,
            error_message=unlinked_message(len(cancelled.rows)),
            error_action=UNLINKED_ACTION,
        )
        await session.commit()
    return RunStatus.CANCELLED.value if finished else RunStatus.ABANDONED.value
