"""SyncRun lifecycle: one active run per organization, claim, heartbeat, progress, abandonment, final state.

The database enforces "one queued-or-running run per organization" (partial unique index), so any number of API
processes and workers can ask for a run at once: the loser of the race gets the winner's run back.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.errors import AppError
from equa.microsoft.models import ACTIVE_RUN_STATUSES, Outcome, RunStatus, SyncOutcome, SyncRun
from equa.organizations.models import Organization

log = logging.getLogger("equa.microsoft.sync.runs")

TRIGGERS = ("api", "web", "schedule", "cli")
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 500
FINISHED_STATUSES = (
    RunStatus.SUCCEEDED.value,
    RunStatus.PARTIAL.value,
    RunStatus.FAILED.value,
    RunStatus.ABANDONED.value,
)


@dataclass
class LeaseConfig:
    """How long a run may go without a heartbeat before it counts as abandoned (EQUA_SYNC_LEASE)."""

    seconds: int = 120


LEASE = LeaseConfig()
# Session.info key under which a transaction collects the runs to enqueue after it commits.
PENDING_ENQUEUE_KEY = "equa_sync_runs_to_enqueue"


def configure_lease(seconds: int) -> None:
    LEASE.seconds = seconds


# --- asking for a run --------------------------------------------------------------------------------------


async def active_run(session: AsyncSession, organization_id: uuid.UUID) -> SyncRun | None:
    return await session.scalar(
        select(SyncRun).where(
            SyncRun.organization_id == organization_id, SyncRun.status.in_(ACTIVE_RUN_STATUSES)
        )
    )


def _stale_condition(now: datetime, lease_seconds: int) -> Any:
    cutoff = now - timedelta(seconds=lease_seconds)
    return or_(
        and_(SyncRun.status == RunStatus.RUNNING.value, SyncRun.heartbeat_at < cutoff),
        # Queued but never claimed within a lease: its message was lost (a broker restart, a failed enqueue).
        and_(SyncRun.status == RunStatus.QUEUED.value, SyncRun.created_at < cutoff),
    )


async def abandon_stale_runs(
    session: AsyncSession, organization_id: uuid.UUID | None = None, *, lease_seconds: int | None = None
) -> int:
    """Mark runs whose worker stopped answering (no heartbeat within the lease) as abandoned."""
    now = utcnow()
    condition = _stale_condition(now, lease_seconds or LEASE.seconds)
    statement = (
        update(SyncRun)
        .where(condition)
        .values(
            status=RunStatus.ABANDONED.value,
            finished_at=now,
            error_code="run_abandoned",
            error_message="The worker running this sync stopped sending heartbeats.",
            error_action="Nothing was lost: start a new sync and it picks up where this one stopped.",
        )
        .execution_options(synchronize_session=False)
    )
    if organization_id is not None:
        statement = statement.where(SyncRun.organization_id == organization_id)
    result = await session.execute(statement)
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.warning("marked %d sync run(s) abandoned", count)
    return count


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
) -> SyncRun:
    """The organization's queued-or-running run if there is one, else a new queued run.

    A new run is handed to the task broker after the caller's transaction commits (never before, so a worker
    can always see it). Raises AppError 409 if no group is linked.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    existing = await active_run(session, organization.id)
    if existing is not None and not await _expire_if_stale(session, existing):
        return existing
    if organization.microsoft_group is None:
        raise AppError(
            409,
            "group_not_linked",
            "This organization has no Microsoft 365 group linked, so there is nothing to sync.",
            "Link a group (or create one) first.",
        )
    run = SyncRun(
        organization_id=organization.id,
        trigger=trigger,
        dry_run=dry_run,
        status=RunStatus.QUEUED.value,
        requested_by=actor.id if actor is not None else None,
        group_id=str(organization.microsoft_group),
        counts={},
        graph_stats={},
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


async def _expire_if_stale(session: AsyncSession, run: SyncRun) -> bool:
    if await abandon_stale_runs(session, run.organization_id) == 0:
        return False
    await session.refresh(run)
    return run.status == RunStatus.ABANDONED.value


# --- reading runs ------------------------------------------------------------------------------------------


def _bad_cursor() -> AppError:
    return AppError(
        422,
        "validation_failed",
        "cursor: is not a cursor this API returned",
        "Start again without a cursor.",
        extra={"errors": [{"field": "cursor", "message": "is not a cursor this API returned"}]},
    )


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        raise _bad_cursor() from None


async def get_run(session: AsyncSession, organization_id: uuid.UUID, run_id: uuid.UUID) -> SyncRun:
    """The run, if it belongs to the organization; AppError 404 otherwise."""
    run = await session.get(SyncRun, run_id, populate_existing=True)
    if run is None or run.organization_id != organization_id:
        raise AppError(
            404,
            "sync_run_not_found",
            "This sync run does not exist.",
            "List this organization's runs with GET .../microsoft/sync-runs and use one of their ids.",
        )
    return run


async def last_run(session: AsyncSession, organization_id: uuid.UUID) -> SyncRun | None:
    return await session.scalar(
        select(SyncRun)
        .where(SyncRun.organization_id == organization_id)
        .order_by(SyncRun.created_at.desc(), SyncRun.id.desc())
        .limit(1)
    )


async def list_runs(
    session: AsyncSession, organization_id: uuid.UUID, *, cursor: str | None = None, limit: int = 20
) -> tuple[list[SyncRun], str | None]:
    """Newest first; returns the page and the cursor of the next page (None at the end)."""
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    statement = select(SyncRun).where(SyncRun.organization_id == organization_id)
    if cursor:
        raw = decode_cursor(cursor)
        try:
            stamp_text, id_text = raw.split("|", 1)
            stamp, after_id = datetime.fromisoformat(stamp_text), uuid.UUID(id_text)
        except ValueError:
            raise _bad_cursor() from None
        statement = statement.where(
            or_(SyncRun.created_at < stamp, and_(SyncRun.created_at == stamp, SyncRun.id < after_id))
        )
    rows = list(
        await session.scalars(
            statement.order_by(SyncRun.created_at.desc(), SyncRun.id.desc()).limit(limit + 1)
        )
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(f"{last.created_at.isoformat()}|{last.id}")
    return rows, next_cursor


async def list_outcomes(
    session: AsyncSession,
    run: SyncRun,
    *,
    outcome: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
) -> tuple[list[SyncOutcome], str | None]:
    """One run's per-member outcomes in a stable order; alreadyMember is counted, not listed."""
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    statement = select(SyncOutcome).where(SyncOutcome.run_id == run.id)
    if outcome is not None:
        if outcome not in {o.value for o in Outcome}:
            raise AppError(
                422,
                "validation_failed",
                f"outcome: must be one of {', '.join(o.value for o in Outcome)}",
                f"Use outcome={', '.join(o.value for o in Outcome)}, or leave it out to list them all.",
                extra={"errors": [{"field": "outcome", "message": "is not a known outcome"}]},
            )
        statement = statement.where(SyncOutcome.outcome == outcome)
    if cursor:
        try:
            after = int(decode_cursor(cursor))
        except ValueError:
            raise _bad_cursor() from None
        statement = statement.where(SyncOutcome.seq > after)
    rows = list(await session.scalars(statement.order_by(SyncOutcome.seq).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(str(rows[-1].seq))
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
            run = await session.get(SyncRun, run_id)
            if run is not None and run.status in FINISHED_STATUSES:
                return run
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(min(poll_seconds, max(0.0, deadline - loop.time())))


# --- a worker's side ---------------------------------------------------------------------------------------


async def claim_run(session_factory: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> SyncRun | None:
    """queued -> running, for exactly one worker; None if someone else claimed it or it is gone/finished."""
    now = utcnow()
    async with session_factory() as session:
        result = await session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.status == RunStatus.QUEUED.value)
            .values(status=RunStatus.RUNNING.value, started_at=now, heartbeat_at=now, phase="starting")
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            return None
        return await session.get(SyncRun, run_id)


async def beat(
    session_factory: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    *,
    done: int,
    total: int,
    phase: str | None,
) -> bool:
    """Record liveness and progress; False if the run is no longer ours (abandoned meanwhile)."""
    async with session_factory() as session:
        result = await session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=utcnow(), progress_done=done, progress_total=total, phase=phase)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return int(getattr(result, "rowcount", 0) or 0) == 1


async def finish_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    status: str,
    counts: dict[str, int] | None = None,
    graph_stats: dict[str, Any] | None = None,
    done: int | None = None,
    total: int | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    error_action: str | None = None,
) -> bool:
    """Write the final state (in the caller's transaction); False if the run had been marked abandoned."""
    values: dict[str, Any] = {
        "status": status,
        "finished_at": utcnow(),
        "heartbeat_at": utcnow(),
        "phase": "finished",
        "error_code": error_code,
        "error_message": error_message,
        "error_action": error_action,
    }
    if counts is not None:
        values["counts"] = counts
    if graph_stats is not None:
        values["graph_stats"] = graph_stats
    if done is not None:
        values["progress_done"] = done
    if total is not None:
        values["progress_total"] = total
    result = await session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.status == RunStatus.RUNNING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1
