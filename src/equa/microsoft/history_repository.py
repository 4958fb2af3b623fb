"""The Microsoft domain's SQL about what happened: audit events, sync runs and their outcomes, and retention.

The counterpart of repository.py (links, grants, the team, flags, exclusions), with the same contract: functions
take the caller's session and only read, add, delete and flush; the caller commits (ARCHITECTURE, rule 2). Keyset
pages are asked for with the last row's key (`after`) and return up to `limit` rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import TypeVar

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from equa.microsoft.models import (
    ACTIVE_RUN_STATUSES,
    AuditEvent,
    SyncOutcome,
    SyncRun,
)

# The organization's rows listed newest first, by (created_at, id).
_Listed = TypeVar("_Listed", AuditEvent, SyncRun)


# --- audit events -----------------------------------------------------------------------------------------


async def audit_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[AuditEvent]:
    """Up to `limit` of the organization's audit events older than `after` (created_at, id), newest first."""
    return await _newest_first(session, AuditEvent, organization_id, after, limit)


async def last_group_of(
    session: AsyncSession, organization_id: uuid.UUID, actions: Collection[str]
) -> str | None:
    """The group (audit target) of the organization's newest audit event among `actions`."""
    target = await session.scalar(
        select(AuditEvent.target)
        .where(AuditEvent.organization_id == organization_id, AuditEvent.action.in_(list(actions)))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(1)
    )
    return str(target) if target else None


# --- sync runs (reads) ------------------------------------------------------------------------------------


async def active_run(session: AsyncSession, organization_id: uuid.UUID) -> SyncRun | None:
    """The organization's queued or running run (the database allows at most one)."""
    return await session.scalar(
        select(SyncRun).where(
            SyncRun.organization_id == organization_id, SyncRun.status.in_(ACTIVE_RUN_STATUSES)
        )
    )


async def sync_run(session: AsyncSession, run_id: uuid.UUID, *, fresh: bool = False) -> SyncRun | None:
    """The run by id; `fresh` reloads it from the database even when the session holds it already."""
    return await session.get(SyncRun, run_id, populate_existing=fresh)


async def last_run(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    dry_run: bool | None = None,
    group_id: str | None = None,
) -> SyncRun | None:
    """The organization's newest run (of the group `group_id`, if given); with `dry_run`, its newest real sync
    (False) or preview (True)."""
    statement = select(SyncRun).where(SyncRun.organization_id == organization_id)
    if group_id is not None:
        statement = statement.where(SyncRun.group_id == group_id)
    if dry_run is not None:
        statement = statement.where(SyncRun.dry_run.is_(dry_run))
    return await session.scalar(statement.order_by(SyncRun.created_at.desc(), SyncRun.id.desc()).limit(1))


async def last_manual_run_at(session: AsyncSession, organization_id: uuid.UUID) -> datetime | None:
    """When the organization's admins last asked for a sync or a dry run (from the API or the page)."""
    return await session.scalar(
        select(func.max(SyncRun.created_at)).where(
            SyncRun.organization_id == organization_id, SyncRun.trigger.in_(("api", "web"))
        )
    )


async def runs_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[SyncRun]:
    """Up to `limit` of the organization's runs older than `after` (created_at, id), newest first."""
    return await _newest_first(session, SyncRun, organization_id, after, limit)


async def _newest_first(
    session: AsyncSession,
    model: type[_Listed],
    organization_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[_Listed]:
    """One keyset page of an organization's rows, newest first: (created_at, id) below `after`."""
    statement = select(model).where(model.organization_id == organization_id)
    if after is not None:
        stamp, after_id = after
        statement = statement.where(
            or_(model.created_at < stamp, and_(model.created_at == stamp, model.id < after_id))
        )
    return list(
        await session.scalars(statement.order_by(model.created_at.desc(), model.id.desc()).limit(limit))
    )


async def outcomes_page(
    session: AsyncSession, run_id: uuid.UUID, *, outcome: str | None, after: int | None, limit: int
) -> list[SyncOutcome]:
    """Up to `limit` of a run's outcomes (of one kind, if given) after sequence number `after`, in order."""
    statement = select(SyncOutcome).where(SyncOutcome.run_id == run_id)
    if outcome is not None:
        statement = statement.where(SyncOutcome.outcome == outcome)
    if after is not None:
        statement = statement.where(SyncOutcome.seq > after)
    return list(await session.scalars(statement.order_by(SyncOutcome.seq).limit(limit)))


# --- retention --------------------------------------------------------------------------------------------


async def runs_past_retention(session: AsyncSession, keep: int, *, limit: int) -> list[uuid.UUID]:
    """Up to `limit` finished runs, older than their organization's `keep` newest, that still have outcomes."""
    ranked = select(
        SyncRun.id,
        SyncRun.status,
        func.row_number()
        .over(partition_by=SyncRun.organization_id, order_by=(SyncRun.created_at.desc(), SyncRun.id.desc()))
        .label("rank"),
    ).subquery()
    statement = (
        select(ranked.c.id)
        .where(ranked.c.rank > keep, ranked.c.status.not_in(ACTIVE_RUN_STATUSES))
        .where(exists().where(SyncOutcome.run_id == ranked.c.id))
        .limit(limit)
    )
    return list(await session.scalars(statement))


async def delete_outcomes(session: AsyncSession, run_ids: Collection[uuid.UUID]) -> int:
    result = await session.execute(delete(SyncOutcome).where(SyncOutcome.run_id.in_(list(run_ids))))
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_audit_events_before(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(delete(AuditEvent).where(AuditEvent.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
