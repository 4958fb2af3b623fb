"""A sync run's lifecycle, on a worker's side: claim, heartbeat, finish, abandon.

queued -> running (claim_run, exactly one worker) -> succeeded | partial | failed (finish_run), or back to queued
(requeue_run) when Microsoft Graph stayed unavailable, to be claimed again once its retry_at has come. A running run beats
(its heartbeat and progress) every quarter of the lease; one that misses a whole lease, or a queued run nobody
claimed within one, is abandoned (abandon_stale_runs), and a run that learns it was abandoned stops quietly. A run
the task queue never received is failed at once (fail_queued_run). Every write here is guarded by the status it
expects, so two processes never both move the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.db.base import utcnow
from equa.microsoft.graph import GraphUsage
from equa.microsoft.models import Outcome, RunStatus, SyncOutcome, SyncRun
from equa.microsoft.sync.progress import Progress
from equa.organizations.models import Organization

log = logging.getLogger("equa.microsoft.sync.runs")


# How long a run may go without a heartbeat before it counts as abandoned: EQUA_SYNC_LEASE's default. Each
# process passes its own setting in (Settings.sync_lease_seconds); this is only the fallback of callers without one.
DEFAULT_LEASE_SECONDS = 120


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# --- claim ---------------------------------------------------------------------------------------------------


async def claim_run(session_factory: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> SyncRun | None:
    """queued -> running, for exactly one worker; None if someone else claimed it or it is gone/finished."""
    now = utcnow()
    async with session_factory() as session:
        result = await session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.status == RunStatus.QUEUED.value)
            # A run queued again keeps the time its first try started.
            .values(
                status=RunStatus.RUNNING.value,
                started_at=func.coalesce(SyncRun.started_at, now),
                heartbeat_at=now,
                phase="starting",
                retry_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        if _rowcount(result) != 1:
            return None
        return await session.get(SyncRun, run_id)


# --- heartbeat -----------------------------------------------------------------------------------------------


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
        return _rowcount(result) == 1


class Heartbeat:
    """Beats for a running run every quarter of the lease, in the background of the task that runs it.

    When a beat finds the run abandoned (its heartbeat was late and someone marked it), `lost` is set and the
    run's task is cancelled, so it stops quietly instead of writing over the abandonment.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        progress: Progress,
        lease_seconds: int,
    ) -> None:
        self._session_factory = session_factory
        self._run_id = run_id
        self._progress = progress
        self._interval = max(0.5, lease_seconds / 4)
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start beating on behalf of the current task (the one cancelled if the run is lost)."""
        self._task = asyncio.create_task(self._beat(asyncio.current_task()))

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _beat(self, work: asyncio.Task[Any] | None) -> None:
        progress = self._progress
        while True:
            await asyncio.sleep(self._interval)
            try:
                alive = await beat(
                    self._session_factory,
                    self._run_id,
                    done=progress.done,
                    total=progress.total,
                    phase=progress.phase,
                )
            except Exception:  # a missed heartbeat is not fatal; the next one may get through
                log.warning("sync run %s: heartbeat failed", self._run_id, exc_info=True)
                continue
            if not alive:
                self.lost.set()
                if work is not None:
                    work.cancel()
                return


# --- the link, between two writes -------------------------------------------------------------------------


async def still_linked(
    session_factory: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, group_id: str
) -> bool:
    """Whether the organization is still linked to the group the run writes to (an admin may unlink meanwhile)."""
    async with session_factory() as session:
        linked = await session.scalar(
            select(Organization.microsoft_group).where(Organization.id == organization_id)
        )
    return linked is not None and str(linked).lower() == group_id.lower()


# --- finish --------------------------------------------------------------------------------------------------


def graph_stats_json(usage: GraphUsage, earlier: dict[str, Any] | None = None) -> dict[str, int]:
    """A run's Graph traffic as SyncRun.graph_stats stores it (and the API shows it); `earlier` is what the
    run's earlier tries sent, for a run queued again."""
    earlier = earlier or {}
    return {
        "requests": int(earlier.get("requests", 0)) + usage.requests,
        "batchSubrequests": int(earlier.get("batchSubrequests", 0)) + usage.batch_subrequests,
        "throttled": int(earlier.get("throttled", 0)) + usage.throttled,
        "retries": int(earlier.get("retries", 0)) + usage.retries,
    }


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
    return _rowcount(result) == 1


async def finish_failed(
    session_factory: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    code: str,
    message: str,
    action: str | None,
    usage: GraphUsage | None = None,
    *,
    earlier_stats: dict[str, Any] | None = None,
) -> None:
    """Fail a running run in its own transaction, with what the admin should do next."""
    async with session_factory() as session:
        await finish_run(
            session,
            run_id,
            status=RunStatus.FAILED.value,
            graph_stats=graph_stats_json(usage, earlier_stats) if usage is not None else None,
            error_code=code,
            error_message=message,
            error_action=action,
        )
        await session.commit()


# --- queued again --------------------------------------------------------------------------------------------

# What a run changed in Microsoft 365; every other outcome is decided again by the next try.
MADE_CHANGES = (Outcome.ADDED.value, Outcome.REMOVED.value)


@dataclass(frozen=True)
class KeptWork:
    """What the earlier tries of a run queued again had done: its outcome rows go on after `last_seq`."""

    last_seq: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    added_user_ids: frozenset[uuid.UUID] = frozenset()

    @property
    def changes(self) -> int:
        return sum(self.counts.get(outcome, 0) for outcome in MADE_CHANGES)


async def keep_made_changes(session: AsyncSession, run_id: uuid.UUID, *, dry_run: bool) -> KeptWork:
    """Before a run is queued again: keep the outcomes of the changes it made (none for a dry run, which made
    none), drop the rest, which the next try decides again, and return what is kept."""
    kept = () if dry_run else MADE_CHANGES
    await session.execute(
        delete(SyncOutcome)
        .where(SyncOutcome.run_id == run_id, SyncOutcome.outcome.not_in(kept))
        .execution_options(synchronize_session=False)
    )
    return await kept_work(session, run_id)


async def kept_work(session: AsyncSession, run_id: uuid.UUID) -> KeptWork:
    """The outcomes a run already holds: a try after a requeue counts them and numbers its own after them."""
    rows = (
        await session.execute(
            select(SyncOutcome.outcome, func.count(), func.max(SyncOutcome.seq))
            .where(SyncOutcome.run_id == run_id)
            .group_by(SyncOutcome.outcome)
        )
    ).all()
    if not rows:
        return KeptWork()
    added = await session.scalars(
        select(SyncOutcome.user_id).where(
            SyncOutcome.run_id == run_id,
            SyncOutcome.outcome == Outcome.ADDED.value,
            SyncOutcome.user_id.is_not(None),
        )
    )
    return KeptWork(
        last_seq=max(int(last or 0) for _, _, last in rows),
        counts={str(outcome): int(count) for outcome, count, _ in rows},
        added_user_ids=frozenset(u for u in added if u is not None),
    )


async def requeue_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    retry_at: datetime,
    counts: dict[str, Any],
    graph_stats: dict[str, Any],
    error_code: str,
    error_message: str,
    error_action: str,
) -> bool:
    """running -> queued again, to be tried at `retry_at` (in the caller's transaction); False if the run had been
    marked abandoned meanwhile. The error says why, and what the run had done so far."""
    result = await session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.status == RunStatus.RUNNING.value)
        .values(
            status=RunStatus.QUEUED.value,
            requeues=SyncRun.requeues + 1,
            retry_at=retry_at,
            heartbeat_at=utcnow(),
            phase="waiting",
            counts=counts,
            graph_stats=graph_stats,
            error_code=error_code,
            error_message=error_message,
            error_action=error_action,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


async def fail_queued_run(session_factory: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> None:
    """A queued run the task queue never received: failed at once, not left queued until its lease runs out."""
    async with session_factory() as session:
        run = await session.get(SyncRun, run_id)
        if run is None or run.status != RunStatus.QUEUED.value:
            return
        run.status = RunStatus.RUNNING.value  # finish_run only moves running runs
        await session.flush()
        await finish_run(
            session,
            run_id,
            status=RunStatus.FAILED.value,
            error_code="queue_unreachable",
            error_message="The sync could not be handed to the task queue.",
            error_action="Check that Redis at EQUA_BROKER_URL is reachable, then start the sync again.",
        )
        await session.commit()


# --- abandon -------------------------------------------------------------------------------------------------


def _stale_condition(now: datetime, lease_seconds: int) -> Any:
    cutoff = now - timedelta(seconds=lease_seconds)
    return or_(
        and_(SyncRun.status == RunStatus.RUNNING.value, SyncRun.heartbeat_at < cutoff),
        # Queued but never claimed within a lease of its turn (its creation, or the retry_at of a run queued
        # again): its message was lost (a broker restart, a failed enqueue, a worker stopped while it waited).
        and_(
            SyncRun.status == RunStatus.QUEUED.value,
            func.coalesce(SyncRun.retry_at, SyncRun.created_at) < cutoff,
        ),
    )


async def abandon_stale_runs(
    session: AsyncSession,
    organization_id: uuid.UUID | None = None,
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Mark runs whose worker stopped answering (no heartbeat within the lease) as abandoned; `clock` is the time the
    lease is measured against (a test moves its own past a lease instead of sleeping through it)."""
    now = clock()
    condition = _stale_condition(now, lease_seconds)
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
    count = _rowcount(result)
    if count:
        log.warning("marked %d sync run(s) abandoned", count)
    return count
