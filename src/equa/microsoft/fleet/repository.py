"""The fleet engine's SQL: delta rounds, pending changes, and when each organization was last reconciled in full."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from equa.db.base import utcnow
from equa.microsoft.fleet.models import ChangeKind, DeltaRound, PendingChange
from equa.microsoft.models import FlaggedMember, FlagStatus, RunStatus, SyncRun

# Triggers of targeted runs: they reconcile a few people, not the whole group.
TARGETED_TRIGGERS = ("push", "delta")
ACTIVE_STATUSES = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
CARRIED_STATUSES = (RunStatus.SUCCEEDED.value, RunStatus.PARTIAL.value)


# --- delta rounds -------------------------------------------------------------------------------------------


async def delta_rounds(session: AsyncSession) -> list[DeltaRound]:
    return list(await session.scalars(select(DeltaRound).order_by(DeltaRound.created_at, DeltaRound.id)))


async def delete_round(session: AsyncSession, round_id: uuid.UUID) -> None:
    await session.execute(delete(DeltaRound).where(DeltaRound.id == round_id))


async def save_round(
    session: AsyncSession, round_id: uuid.UUID, group_ids: list[str], delta_link: str
) -> None:
    await session.execute(
        update(DeltaRound)
        .where(DeltaRound.id == round_id)
        .values(group_ids=group_ids, delta_link=delta_link, updated_at=utcnow())
    )


async def activate_rounds(session: AsyncSession, round_ids: Collection[uuid.UUID]) -> None:
    """Successors taken by compaction become ordinary rounds, resumed from the next cycle on."""
    await session.execute(
        update(DeltaRound)
        .where(DeltaRound.id.in_(list(round_ids)))
        .values(takes_over_at=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


# --- pending changes ----------------------------------------------------------------------------------------


async def unassigned_changes(session: AsyncSession) -> list[PendingChange]:
    """Changes no run carries yet, oldest first."""
    return list(
        await session.scalars(
            select(PendingChange).where(PendingChange.run_id.is_(None)).order_by(PendingChange.id)
        )
    )


async def settle_changes_of_ended_runs(session: AsyncSession) -> int:
    """Changes whose run has ended: carried (it succeeded, in full or in part) -> deleted; otherwise (failed,
    abandoned, cancelled) -> waiting again for the next run, a full reconcile owed included (scheduling.py asks
    for it again once the organization's failure is a lease old, or longer after failures in a row: see
    failing_organizations). Returns how many wait again."""
    carried = select(SyncRun.id).where(SyncRun.status.in_(CARRIED_STATUSES))
    await session.execute(
        delete(PendingChange)
        .where(PendingChange.run_id.in_(carried))
        .execution_options(synchronize_session=False)
    )
    # A reconcile change waits again like any other: it is the only record that an expired deltaLink or a group
    # watched again left changes unseen, which the organization's periodic full reconcile would catch a day late.
    active = select(SyncRun.id).where(SyncRun.id == PendingChange.run_id, SyncRun.status.in_(ACTIVE_STATUSES))
    result = await session.execute(
        update(PendingChange)
        .where(PendingChange.run_id.is_not(None), ~active.exists())
        .values(run_id=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def assign_changes(session: AsyncSession, change_ids: Collection[int], run_id: uuid.UUID) -> None:
    await session.execute(
        update(PendingChange)
        .where(PendingChange.id.in_(list(change_ids)))
        .values(run_id=run_id)
        .execution_options(synchronize_session=False)
    )


async def delete_changes(session: AsyncSession, change_ids: Collection[int]) -> None:
    if change_ids:
        await session.execute(delete(PendingChange).where(PendingChange.id.in_(list(change_ids))))


async def changes_of_run(session: AsyncSession, run_id: uuid.UUID) -> list[PendingChange]:
    return list(
        await session.scalars(
            select(PendingChange).where(PendingChange.run_id == run_id).order_by(PendingChange.id)
        )
    )


async def delete_changes_of_run(session: AsyncSession, run_id: uuid.UUID) -> None:
    await session.execute(delete(PendingChange).where(PendingChange.run_id == run_id))


async def delete_team_changes(
    session: AsyncSession, organization_id: uuid.UUID, user_ids: Collection[uuid.UUID]
) -> None:
    """Team changes a pushed run now carries."""
    await session.execute(
        delete(PendingChange).where(
            PendingChange.organization_id == organization_id,
            PendingChange.kind == ChangeKind.TEAM.value,
            PendingChange.user_id.in_(list(user_ids)),
            PendingChange.run_id.is_(None),
        )
    )


# --- full reconciles ----------------------------------------------------------------------------------------


async def last_full_runs(
    session: AsyncSession, organization_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """Organization -> when its last full (not targeted, not dry) run was asked for."""
    rows = await session.execute(
        select(SyncRun.organization_id, func.max(SyncRun.created_at))
        .where(
            SyncRun.organization_id.in_(list(organization_ids)),
            SyncRun.dry_run.is_(False),
            SyncRun.trigger.not_in(TARGETED_TRIGGERS),
        )
        .group_by(SyncRun.organization_id)
    )
    return {organization_id: created for organization_id, created in rows}


async def reconciled_organization_ids(
    session: AsyncSession, organization_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these organizations have had a full (not targeted, not dry) run succeed, in full or in part."""
    return set(
        await session.scalars(
            select(SyncRun.organization_id)
            .where(
                SyncRun.organization_id.in_(list(organization_ids)),
                SyncRun.dry_run.is_(False),
                SyncRun.trigger.not_in(TARGETED_TRIGGERS),
                SyncRun.status.in_(CARRIED_STATUSES),
            )
            .distinct()
        )
    )


async def busy_organization_ids(
    session: AsyncSession, organization_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these organizations have a queued or running run."""
    return set(
        await session.scalars(
            select(SyncRun.organization_id).where(
                SyncRun.status.in_(ACTIVE_STATUSES), SyncRun.organization_id.in_(list(organization_ids))
            )
        )
    )


# --- flags the fold keeps ----------------------------------------------------------------------------------


async def flag_of(
    session: AsyncSession, organization_id: uuid.UUID, directory_id: str
) -> FlaggedMember | None:
    return await session.scalar(
        select(FlaggedMember).where(
            FlaggedMember.organization_id == organization_id,
            func.lower(FlaggedMember.directory_id) == directory_id.lower(),
        )
    )


async def clear_pending_flag(session: AsyncSession, organization_id: uuid.UUID, directory_id: str) -> None:
    """A flag clears once the person is out of the group or on the team; a dismissal is kept."""
    await session.execute(
        delete(FlaggedMember).where(
            FlaggedMember.organization_id == organization_id,
            func.lower(FlaggedMember.directory_id) == directory_id.lower(),
            FlaggedMember.status != FlagStatus.DISMISSED.value,
        )
    )


async def flagged_ids(session: AsyncSession, organization_id: uuid.UUID) -> set[str]:
    """Directory ids flagged in the organization, whatever their status (a dismissal counts: nothing to do)."""
    return set(
        await session.scalars(
            select(FlaggedMember.directory_id).where(FlaggedMember.organization_id == organization_id)
        )
    )


async def delta_rounds_of(session: AsyncSession, tenant_id: str) -> list[DeltaRound]:
    return list(
        await session.scalars(
            select(DeltaRound)
            .where(DeltaRound.tenant_id == tenant_id)
            .order_by(DeltaRound.created_at, DeltaRound.id)
        )
    )


async def unassigned_changes_of(
    session: AsyncSession, organization_ids: Collection[uuid.UUID]
) -> list[PendingChange]:
    """The changes of these organizations that no run carries yet, oldest first."""
    return list(
        await session.scalars(
            select(PendingChange)
            .where(PendingChange.run_id.is_(None), PendingChange.organization_id.in_(list(organization_ids)))
            .order_by(PendingChange.id)
        )
    )


async def user_changes(session: AsyncSession) -> list[PendingChange]:
    """Team changes of a user (organization None): to spread to each organization the user is in."""
    return list(
        await session.scalars(
            select(PendingChange).where(PendingChange.organization_id.is_(None)).order_by(PendingChange.id)
        )
    )


async def drop_changes_of_untracked(session: AsyncSession, tracked: Collection[uuid.UUID]) -> None:
    """Changes of organizations with no group linked or autoSync off: nothing carries them, a full sync covers them."""
    await session.execute(
        delete(PendingChange).where(
            PendingChange.organization_id.is_not(None),
            PendingChange.run_id.is_(None),
            PendingChange.organization_id.not_in(list(tracked)),
        )
    )


def write_pending_changes(connection: Connection, rows: list[dict[str, object]]) -> None:
    """Insert pending changes on a flush's connection (synchronous: called from a session event)."""
    connection.execute(insert(PendingChange), rows)


async def overdue_queued_runs(session: AsyncSession, turn_before: datetime) -> list[uuid.UUID]:
    """Queued runs whose turn (retry_at, else creation) came before `turn_before`."""
    return list(
        await session.scalars(
            select(SyncRun.id).where(
                SyncRun.status == RunStatus.QUEUED.value,
                func.coalesce(SyncRun.retry_at, SyncRun.created_at) < turn_before,
            )
        )
    )


async def move_turn(session: AsyncSession, run_id: uuid.UUID, retry_at: datetime) -> bool:
    """A queued run waits for a tenant slot: its turn moves to `retry_at` (so it is not taken for lost)."""
    result = await session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.status == RunStatus.QUEUED.value)
        .values(retry_at=retry_at)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def failing_organizations(
    session: AsyncSession,
    organization_ids: Collection[uuid.UUID],
    now: datetime,
    first_wait_seconds: float,
    longest_wait_seconds: float,
) -> set[uuid.UUID]:
    """Which of these organizations wait after failing: their runs failed or were abandoned since their last
    success, and the last failure is younger than first_wait x 2^(failures - 1), at most longest_wait. So a passing
    outage is retried a lease later, and a lasting one (a group taken out of the scope) backs off towards once per
    longest_wait instead of failing once a lease for ever. Failures older than longest_wait no longer count."""
    ids = list(organization_ids)
    last_success = (
        select(SyncRun.organization_id, func.max(SyncRun.finished_at).label("at"))
        .where(SyncRun.organization_id.in_(ids), SyncRun.status.in_(CARRIED_STATUSES))
        .group_by(SyncRun.organization_id)
        .subquery()
    )
    rows = await session.execute(
        select(SyncRun.organization_id, func.count(), func.max(SyncRun.finished_at))
        .outerjoin(last_success, last_success.c.organization_id == SyncRun.organization_id)
        .where(
            SyncRun.organization_id.in_(ids),
            SyncRun.status.in_((RunStatus.FAILED.value, RunStatus.ABANDONED.value)),
            SyncRun.finished_at >= now - timedelta(seconds=longest_wait_seconds),
            (last_success.c.at.is_(None)) | (SyncRun.finished_at > last_success.c.at),
        )
        .group_by(SyncRun.organization_id)
    )
    waiting: set[uuid.UUID] = set()
    for organization_id, failures, last_failure in rows:
        wait = min(longest_wait_seconds, first_wait_seconds * 2.0 ** min(failures - 1, 30))
        if (
            last_failure is not None and last_failure.tzinfo is None
        ):  # an aggregate may lose the column's type
            last_failure = last_failure.replace(tzinfo=UTC)
        if last_failure is not None and last_failure + timedelta(seconds=wait) > now:
            waiting.add(organization_id)
    return waiting
