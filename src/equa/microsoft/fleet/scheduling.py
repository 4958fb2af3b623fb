"""One tenant's runs in a cycle: each organization with pending changes gets ONE targeted run (trigger `delta`)
carrying both sides' changes; one whose full reconcile is due (never reconciled, EQUA_FULL_RECONCILE_INTERVAL
passed, its deltaLink expired, its group deleted or watched again) gets a full run instead, which covers its pending
changes too. A full reconcile asked for by a pending change is owed until a run carrying it succeeds.

Organizations are served in the order they have waited (oldest pending change or due time first), so inside a
tenant every organization gets its turn before any gets a second; an organization with a run still queued or
running keeps its changes for the next cycle (one active run per organization), and so does one whose last run
failed less than a lease ago (a lasting failure is retried once a lease, not every tick).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from equa.microsoft import repository
from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.fleet.delta_run import DELTA_TRIGGER, team_targets
from equa.microsoft.fleet.models import ChangeKind, PendingChange
from equa.microsoft.fleet.sessions import SessionOpener
from equa.microsoft.sync.runs import PENDING_ENQUEUE_KEY, request_sync

FULL_TRIGGER = "schedule"
RECONCILE_JITTER = 0.1  # each organization's full-reconcile interval is stretched by a stable 0-10 %


@dataclass
class TenantRuns:
    full: list[uuid.UUID] = field(default_factory=list)
    targeted: list[uuid.UUID] = field(default_factory=list)


def reconcile_offset(organization_id: uuid.UUID) -> float:
    """A stable fraction in [0, 1) per organization, so full reconciles spread instead of coming all at once."""
    return int.from_bytes(hashlib.sha256(organization_id.bytes).digest()[:4], "big") / 2**32


def full_reconcile_due(
    organization_id: uuid.UUID, last_full: datetime | None, interval_seconds: int, now: datetime
) -> datetime | None:
    """When the organization's full reconcile became due, or None if it is not due at `now`."""
    if last_full is None:
        return datetime.min.replace(tzinfo=now.tzinfo)
    due = last_full + timedelta(
        seconds=interval_seconds * (1 + RECONCILE_JITTER * reconcile_offset(organization_id))
    )
    return due if due <= now else None


async def schedule_tenant_runs(
    session_factory: SessionOpener,
    organization_ids: Collection[uuid.UUID],
    *,
    now: datetime,
    full_interval_seconds: int,
    lease_seconds: int,
) -> TenantRuns:
    made = TenantRuns()
    async with session_factory() as session:
        changes = await fleet_repository.unassigned_changes_of(session, organization_ids)
        last_full = await fleet_repository.last_full_runs(session, organization_ids)
        # An organization whose full runs all failed has never been read: its first reconcile is owed still, and
        # comes once its failure is a lease old (below; doubling with each failure in a row, up to the interval), not
        # an interval after the run that failed.
        reconciled = await fleet_repository.reconciled_organization_ids(session, organization_ids)
        busy = await fleet_repository.busy_organization_ids(session, organization_ids)
        busy |= await fleet_repository.failing_organizations(
            session, organization_ids, now, lease_seconds, full_interval_seconds
        )
        by_organization: dict[uuid.UUID, list[PendingChange]] = {}
        for change in changes:
            if change.organization_id is not None:
                by_organization.setdefault(change.organization_id, []).append(change)
        waiting: list[tuple[datetime, str, uuid.UUID, bool]] = []
        for organization_id in organization_ids:
            if organization_id in busy:
                continue
            pending = by_organization.get(organization_id, [])
            last = last_full.get(organization_id) if organization_id in reconciled else None
            due = full_reconcile_due(organization_id, last, full_interval_seconds, now)
            full = due is not None or any(c.kind == ChangeKind.RECONCILE.value for c in pending)
            if not (full or pending):
                continue
            since = min([c.created_at for c in pending] + ([due] if due is not None else []))
            waiting.append((since, str(organization_id), organization_id, full))
        for _, _, organization_id, full in sorted(waiting):
            run_id = await _request_run(
                session, organization_id, by_organization.get(organization_id, []), full, lease_seconds
            )
            if run_id is not None:
                (made.full if full else made.targeted).append(run_id)
        await session.commit()
    return made


async def _request_run(
    session: AsyncSession,
    organization_id: uuid.UUID,
    pending: list[PendingChange],
    full: bool,
    lease_seconds: int,
) -> uuid.UUID | None:
    organization = await repository.organization(session, organization_id)
    if organization is None or organization.microsoft_group is None:
        return None
    if full:
        run = await request_sync(
            session, organization, None, False, FULL_TRIGGER, lease_seconds=lease_seconds
        )
    else:
        people = {c.user_id for c in pending if c.kind == ChangeKind.TEAM.value and c.user_id is not None}
        run = await request_sync(
            session,
            organization,
            None,
            False,
            DELTA_TRIGGER,
            lease_seconds=lease_seconds,
            targets=team_targets(people),
        )
    if run.id not in session.info.get(PENDING_ENQUEUE_KEY, []):
        return None  # another process made a run meanwhile: the changes wait for the next cycle
    # The run carries them: deleted once it succeeds (a full run reads everything anew), waiting again if it fails.
    await fleet_repository.assign_changes(session, [c.id for c in pending], run.id)
    return run.id
