"""Handing runs to the task broker: now, a moment later (without holding a worker slot while waiting), and again
when a queued run's turn has passed unclaimed (its message was lost with a worker or a broker restart)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from equa.db.base import utcnow
from equa.microsoft import history_repository
from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.fleet.tenant_slots import TenantSlots, build_tenant_slots
from equa.microsoft.sync.lifecycle import fail_queued_run

if TYPE_CHECKING:
    from equa.microsoft.tasks import JobResources

log = logging.getLogger("equa.microsoft.tasks")

SYNC_TASK_NAME = "equa.microsoft.sync_run"

# Strong references to enqueues scheduled for later, so they are not collected before they run.
_LATER: set[asyncio.Task[Any]] = set()


async def enqueue_sync_runs(resources: JobResources, run_ids: Sequence[uuid.UUID]) -> None:
    """Hand committed runs to the broker; a run that cannot be enqueued is failed at once, not left queued."""
    for run_id in run_ids:
        try:
            if resources.broker is None:
                raise RuntimeError("no task broker in this process")
            task = resources.broker.find_task(SYNC_TASK_NAME)
            if task is None:
                raise RuntimeError("the sync task is not registered")
            await task.kiq(str(run_id))
        except Exception as error:
            log.error("could not enqueue sync run %s: %s", run_id, type(error).__name__)
            await fail_queued_run(resources.session_factory, run_id)


def enqueue_later(resources: JobResources, run_id: uuid.UUID, delay: float) -> None:
    """Enqueue the run again after `delay` seconds, from a timer: no worker slot is held while it waits."""
    loop = asyncio.get_running_loop()

    def fire() -> None:
        task = loop.create_task(enqueue_sync_runs(resources, [run_id]))
        _LATER.add(task)
        task.add_done_callback(_LATER.discard)

    loop.call_later(max(0.0, delay), fire)


async def requeue_overdue_runs(resources: JobResources, overdue_seconds: float) -> int:
    """Enqueue again every queued run whose turn passed `overdue_seconds` ago unclaimed; a second message for a
    run is harmless (exactly one worker claims it)."""
    async with resources.session_factory() as session:
        run_ids = await fleet_repository.overdue_queued_runs(
            session, utcnow() - timedelta(seconds=overdue_seconds)
        )
    if run_ids:
        log.info("enqueuing %d queued run(s) again: their turn passed unclaimed", len(run_ids))
        await enqueue_sync_runs(resources, run_ids)
    return len(run_ids)


SLOT_WAIT_SECONDS = 2.0  # a run whose tenant has no free slot goes back on the queue this much later


async def wait_for_a_slot(resources: JobResources, run_id: uuid.UUID) -> None:
    """Its tenant's slots are all taken: the run's turn moves a moment later, and it is enqueued again then."""
    try:
        async with resources.session_factory() as session:
            moved = await fleet_repository.move_turn(
                session, run_id, utcnow() + timedelta(seconds=SLOT_WAIT_SECONDS)
            )
            await session.commit()
    except DBAPIError:
        # The turn could not be moved (a database that did not answer in time): the run is still queued, so it
        # goes back on the queue all the same rather than wait a lease to be found lost.
        log.warning(
            "could not move the turn of queued run %s; enqueuing it again anyway", run_id, exc_info=True
        )
        moved = True
    if moved:
        enqueue_later(resources, run_id, SLOT_WAIT_SECONDS)


async def retry_when_due(resources: JobResources, run_id: uuid.UUID) -> None:
    """A run an outage queued again goes back to the broker at its retry_at (if this process stops first, the
    fleet cycle enqueues it again once its turn has passed)."""
    async with resources.session_factory() as session:
        run = await history_repository.sync_run(session, run_id)
        retry_at = run.retry_at if run is not None else None
    delay = 0.0 if retry_at is None else (retry_at - utcnow()).total_seconds()
    enqueue_later(resources, run_id, delay)


def tenant_slots_of(resources: JobResources) -> TenantSlots:
    """The process's tenant slots: in Redis when workers share one, else in this process."""
    if resources.tenant_slots is None:
        settings = resources.settings
        resources.tenant_slots = build_tenant_slots(
            settings.redis_url or settings.broker_url,
            settings.sync_tenant_concurrency,
            settings.sync_lease_seconds,
        )
    return resources.tenant_slots
