"""Asking for and reading sync runs: one active run per organization, run pages, outcome pages, waiting for a run.

A worker's side of a run (claim, heartbeat, finish, abandon) is in lifecycle.py.

The database enforces "one queued-or-running run per organization" (partial unique index), so any number of API
processes and workers can ask for a run at once: the loser of the race gets the winner's run back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.errors import AppError
from equa.microsoft import history_repository
from equa.microsoft.models import Outcome, RunStatus, SyncOutcome, SyncRun
from equa.microsoft.sync.lifecycle import DEFAULT_LEASE_SECONDS, abandon_stale_runs
from equa.organizations.models import Organization
from equa.pagination import Cursors, invalid_cursor

log = logging.getLogger("equa.microsoft.sync.runs")

TRIGGERS = ("api", "web", "schedule", "cli", "push", "delta")
# Runs an organization's admins ask for (a sync or a dry run): these are paced by EQUA_SYNC_MIN_INTERVAL.
MANUAL_TRIGGERS = ("api", "web")
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 500
FINISHED_STATUSES = (
    RunStatus.SUCCEEDED.value,
    RunStatus.PARTIAL.value,
    RunStatus.FAILED.value,
    RunStatus.ABANDONED.value,
    RunStatus.CANCELLED.value,
)


# Session.info key under which a transaction collects the runs to enqueue after it commits.
PENDING_ENQUEUE_KEY = "equa_sync_runs_to_enqueue"


# --- asking for a run --------------------------------------------------------------------------------------


async def active_run(session: AsyncSession, organization_id: uuid.UUID) -> SyncRun | None:
    return await history_repository.active_run(session, organization_id)


def _enqueue_after_commit(session: AsyncSession, run_id: uuid.UUID) -> None:
    """Mark the run for the task broker; the broker's after-commit hook (tasks.py) hands it over once (and only if)
    the transaction that created it commits, so a worker never sees a run that was rolled back."""
    session.info.setdefault(PENDING_ENQUEUE_KEY, []).append(run_id)


async def request_sync(
    session: AsyncSession,
    organization: Organization,
    actor: User | None,
    dry_run: bool,
    trigger: str,
    *,
    enqueue: bool = True,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    min_interval: int = 0,
    targets: list[str] | None = None,
) -> SyncRun:
    """The organization's queued-or-running run if there is one, else a new queued run.

    A new run is handed to the task broker after the caller's transaction commits (never before, so a worker
    can always see it). Raises AppError 409 if no group is linked, and 429 if an admin's run (`api`, `web`) comes
    less than `min_interval` seconds after the organization's last one. `targets` (user ids) makes the run a
    targeted one, for just those people.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    existing = await active_run(session, organization.id)
    if existing is not None and not await _expire_if_stale(session, existing, lease_seconds):
        return existing
    if organization.microsoft_group is None:
        raise AppError(
            409,
            "group_not_linked",
            "This organization has no Microsoft 365 group linked, so there is nothing to sync.",
            "Link a group (or create one) first.",
        )
    if min_interval > 0 and trigger in MANUAL_TRIGGERS:
        await _check_pace(session, organization.id, min_interval)
    run = SyncRun(
        organization_id=organization.id,
        trigger=trigger,
        dry_run=dry_run,
        status=RunStatus.QUEUED.value,
        requested_by=actor.id if actor is not None else None,
        group_id=str(organization.microsoft_group),
        counts={},
        graph_stats={},
        targets=targets,
    )
    try:
        async with session.begin_nested():
            session.add(run)
    except IntegrityError:
        # Another process created the active run between our read and our insert: return theirs.
        winner = await active_run(session, organization.id)
        if winner is None:
            raise
        return winner
    if enqueue:
        _enqueue_after_commit(session, run.id)
    return run


async def _check_pace(session: AsyncSession, organization_id: uuid.UUID, min_interval: int) -> None:
    """AppError 429 (with Retry-After) if the organization's last sync or dry run was asked for too recently."""
    last = await history_repository.last_manual_run_at(session, organization_id)
    if last is None:
        return
    wait = min_interval - (utcnow() - last).total_seconds()
    if wait <= 0:
        return
    seconds = max(1, math.ceil(wait))
    raise AppError(
        429,
        "sync_too_soon",
        f"A sync or preview of this organization was asked for {max(0, min_interval - seconds)} s ago; one "
        f"may be asked for every {min_interval} s.",
        f"Wait {seconds} s (Retry-After), then start it again; the last run's result is shown meanwhile.",
        headers={"Retry-After": str(seconds)},
        extra={"retryAfterSeconds": seconds},
    )


async def _expire_if_stale(session: AsyncSession, run: SyncRun, lease_seconds: int) -> bool:
    if await abandon_stale_runs(session, run.organization_id, lease_seconds=lease_seconds) == 0:
        return False
    await session.refresh(run)
    return run.status == RunStatus.ABANDONED.value


# --- reading runs ------------------------------------------------------------------------------------------


async def get_run(session: AsyncSession, organization_id: uuid.UUID, run_id: uuid.UUID) -> SyncRun:
    """The run, if it belongs to the organization; AppError 404 otherwise."""
    run = await history_repository.sync_run(session, run_id, fresh=True)
    if run is None or run.organization_id != organization_id:
        raise AppError(
            404,
            "sync_run_not_found",
            "This sync run does not exist.",
            "List this organization's runs with GET .../microsoft/sync-runs and use one of their ids.",
        )
    return run


async def last_run(session: AsyncSession, organization_id: uuid.UUID) -> SyncRun | None:
    return await history_repository.last_run(session, organization_id)


async def list_runs(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    cursors: Cursors,
    cursor: str | None = None,
    limit: int = 20,
) -> tuple[list[SyncRun], str | None]:
    """Newest first; returns the page and the cursor of the next page (None at the end)."""
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    after: tuple[datetime, uuid.UUID] | None = None
    if cursor:
        position = cursors.read(cursor, max_size=PAGE_SIZE_MAX)
        limit = position.size
        try:
            stamp_text, id_text = position.position
            after = datetime.fromisoformat(stamp_text), uuid.UUID(id_text)
        except ValueError:
            raise invalid_cursor() from None
    rows = await history_repository.runs_page(session, organization_id, after=after, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = cursors.sign(size=limit, position=(last.created_at.isoformat(), str(last.id)))
    return rows, next_cursor


async def list_outcomes(
    session: AsyncSession,
    run: SyncRun,
    *,
    cursors: Cursors,
    outcome: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
) -> tuple[list[SyncOutcome], str | None]:
    """One run's per-member outcomes in a stable order; alreadyMember is counted, not listed."""
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    if outcome is not None and outcome not in {o.value for o in Outcome}:
        raise AppError(
            422,
            "validation_failed",
            f"outcome: must be one of {', '.join(o.value for o in Outcome)}",
            f"Use outcome={', '.join(o.value for o in Outcome)}, or leave it out to list them all.",
            extra={"errors": [{"field": "outcome", "message": "is not a known outcome"}]},
        )
    after: int | None = None
    if cursor:
        position = cursors.read(cursor, max_size=PAGE_SIZE_MAX)
        limit = position.size
        try:
            (after_text,) = position.position
            after = int(after_text)
        except ValueError:
            raise invalid_cursor() from None
    rows = await history_repository.outcomes_page(
        session, run.id, outcome=outcome, after=after, limit=limit + 1
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.sign(size=limit, position=(str(rows[-1].seq),))
    return rows, next_cursor


async def wait_for_run(
    session_factory: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    timeout: float,
    *,
    poll_seconds: float = 0.1,
) -> SyncRun | None:
    """The run once finished, or None if it is still queued or running after `timeout` seconds.

    Polls the database, so it works whichever process (this one, a worker) runs the sync.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout)
    while True:
        async with session_factory() as session:
            run = await history_repository.sync_run(session, run_id)
            if run is not None and run.status in FINISHED_STATUSES:
                return run
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(min(poll_seconds, max(0.0, deadline - loop.time())))
