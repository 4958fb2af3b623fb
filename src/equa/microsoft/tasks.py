"""Background jobs: the sync task on a Taskiq broker, the worker loop, and the processes that run the scheduler
(its loop is in scheduler.py).

Embedded (default): an in-memory broker, so the API process runs the syncs it is asked for, and the scheduler runs
inside it too. Scaled out (EQUA_BROKER_URL set): a Redis list queue; `equa worker` processes run the syncs and one
`equa scheduler` process enqueues the periodic ones. Correctness never depends on the broker: the database decides
which run exists (one active per organization) and which worker runs it (claim queued -> running).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from equa.db.base import utcnow
from equa.db.engine import session_class_of
from equa.microsoft import history_repository, repository
from equa.microsoft.fleet.dispatch import (
    SYNC_TASK_NAME,
    enqueue_sync_runs,
    retry_when_due,
    tenant_slots_of,
    wait_for_a_slot,
)
from equa.microsoft.fleet.outbox import install_outbox_hook
from equa.microsoft.fleet.tenant_slots import TENANT_BUSY, TenantSlots, run_in_slot
from equa.microsoft.models import RunStatus, SyncRun
from equa.microsoft.scheduler import run_scheduler, sleep_or_stop, tick_seconds
from equa.microsoft.scheduler_lock import DEFAULT_KEY as DEFAULT_LOCK_KEY
from equa.microsoft.scheduler_lock import SchedulerLeadership
from equa.microsoft.scope import GroupScope
from equa.microsoft.sync.execute import Progress, execute_run
from equa.microsoft.sync.lifecycle import abandon_stale_runs
from equa.microsoft.sync.push import TeamChangePusher, install_push_hook
from equa.microsoft.sync.requeue import RequeuePolicy
from equa.microsoft.sync.runs import PENDING_ENQUEUE_KEY, active_run, request_sync
from equa.microsoft.tenants.routing import graph_for_run

if TYPE_CHECKING:
    from fastapi import FastAPI
    from taskiq import AsyncBroker

    from equa.microsoft.graph import GraphClient
    from equa.settings import Settings

log = logging.getLogger("equa.microsoft.tasks")

QUEUE_NAME = "equa:sync"
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass
class JobResources:
    """What a task needs, built once per process (API lifespan, worker or scheduler start-up) and passed in.

    The API process keeps its own on `app.state.jobs`; nothing about jobs is held in a module global, so two apps
    in one process (the browser tests serve three) each run their syncs with their own settings.
    """

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    graph: GraphClient
    broker: AsyncBroker | None = None  # where committed runs are enqueued, once build_broker has made it
    tenant_slots: TenantSlots | None = None  # runs of one tenant at once, across workers (tenant_slots_of)


async def run_sync_task(resources: JobResources, run_id: str) -> str | None:
    """Run one queued sync in a slot of its tenant (a no-op if another worker claimed it). A run whose tenant has no
    free slot, or that an outage queued again, is enqueued again from a timer: no worker slot is held meanwhile."""
    run_uuid = uuid.UUID(run_id)
    graph = await graph_of_run(resources, run_uuid)
    status = await run_in_slot(
        tenant_slots_of(resources),
        graph.tenant,
        run_id,
        lambda: execute_run(
            resources.session_factory,
            graph,
            run_uuid,
            scope=GroupScope.from_settings(resources.settings),
            lease_seconds=resources.settings.sync_lease_seconds,
            requeue=RequeuePolicy.from_settings(resources.settings),
        ),
        resources.settings.sync_lease_seconds,
    )
    if status == TENANT_BUSY:
        await wait_for_a_slot(resources, run_uuid)
    elif status == RunStatus.QUEUED.value:
        await retry_when_due(resources, run_uuid)
    return status


async def wait_for_retry(session_factory: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> None:
    """Sleep until the retry_at of a run queued again."""
    async with session_factory() as session:
        run = await history_repository.sync_run(session, run_id)
        retry_at = run.retry_at if run is not None else None
    if retry_at is not None:
        await asyncio.sleep(max(0.0, (retry_at - utcnow()).total_seconds()))


async def graph_of_run(resources: JobResources, run_id: uuid.UUID) -> GraphClient:
    """The Graph client of the run's organization (its own tenant in multi-tenant mode)."""
    if not resources.settings.multi_tenant:
        return resources.graph
    async with resources.session_factory() as session:
        run = await history_repository.sync_run(session, run_id)
    if run is None:
        return resources.graph
    return await graph_for_run(
        resources.session_factory, resources.graph, resources.settings, run.organization_id
    )


def build_broker(resources: JobResources) -> AsyncBroker:
    """The process's task broker, with the sync task bound to `resources` (and kept on them)."""
    settings = resources.settings
    broker: AsyncBroker
    if settings.broker_url:
        from taskiq_redis import ListQueueBroker

        # The worker waits on a blocking pop with no time limit; redis-py's default read timeout would break
        # that wait every few seconds and stop the listener. Keepalive still detects a dead connection.
        broker = ListQueueBroker(
            settings.broker_url, queue_name=QUEUE_NAME, socket_timeout=None, socket_keepalive=True
        )
    else:
        from taskiq import InMemoryBroker

        broker = InMemoryBroker(max_async_tasks=50)

    async def sync_run(run_id: str) -> str | None:
        return await run_sync_task(resources, run_id)

    broker.register_task(sync_run, task_name=SYNC_TASK_NAME)
    resources.broker = broker
    return broker


def install_enqueue_hook(resources: JobResources) -> Callable[[], None]:
    """The broker side of runs.request_sync, on the sessions of `resources.session_factory` only: runs marked in
    a transaction are enqueued once it has committed. Returns the function that removes the hook."""
    session_class = session_class_of(resources.session_factory)
    # Strong references to the enqueue tasks in flight, so they are not collected before they finish.
    in_flight: set[asyncio.Task[Any]] = set()

    def enqueue_committed_runs(session: Session) -> None:
        if session.in_nested_transaction():
            # SQLAlchemy fires after_commit for a savepoint's release too (request_sync makes one per run): a run
            # enqueued then is invisible to the worker until the real commit, which finds nothing to claim and
            # leaves it queued until its lease runs out. Only the outermost commit hands runs over.
            return
        run_ids: list[uuid.UUID] = session.info.pop(PENDING_ENQUEUE_KEY, [])
        if not run_ids:
            return
        # The commit runs on the event loop's thread (SQLAlchemy's async bridge), so the loop is at hand.
        task = asyncio.get_running_loop().create_task(enqueue_sync_runs(resources, run_ids))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    def forget_rolled_back_runs(session: Session, previous_transaction: Any) -> None:
        if previous_transaction.parent is None:  # the whole transaction, not a savepoint
            session.info.pop(PENDING_ENQUEUE_KEY, None)

    event.listen(session_class, "after_commit", enqueue_committed_runs)
    event.listen(session_class, "after_soft_rollback", forget_rolled_back_runs)

    def remove() -> None:
        event.remove(session_class, "after_commit", enqueue_committed_runs)
        event.remove(session_class, "after_soft_rollback", forget_rolled_back_runs)

    return remove


async def _shutdown_broker(broker: AsyncBroker) -> None:
    running: set[asyncio.Task[Any]] = getattr(broker, "_running_tasks", set())
    if running:
        # Give runs in flight a moment to finish; the rest are cancelled and record "interrupted".
        _, still_running = await asyncio.wait(list(running), timeout=SHUTDOWN_GRACE_SECONDS)
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running, timeout=SHUTDOWN_GRACE_SECONDS)
    await broker.shutdown()


async def start_jobs(app: FastAPI, stack: AsyncExitStack) -> None:
    """Lifespan hook: the broker (and, embedded, the scheduler) for this API process."""
    settings: Settings = app.state.settings
    graph = getattr(app.state, "graph", None)
    app.state.jobs = None
    if not settings.ms_auth_enabled or graph is None:
        return
    resources = app.state.jobs = JobResources(settings, app.state.session_factory, graph)
    broker = build_broker(resources)
    await broker.startup()
    stack.callback(install_enqueue_hook(resources))
    stack.push_async_callback(_shutdown_broker, broker)
    # Team changes made through this process, pushed to the group as targeted runs (autoSync on).
    pusher = TeamChangePusher(resources.session_factory, lease_seconds=settings.sync_lease_seconds)
    stack.push_async_callback(pusher.aclose)
    stack.callback(install_push_hook(resources.session_factory, pusher))
    stack.callback(install_outbox_hook(resources.session_factory))
    if not settings.broker_url:
        # Several API replicas sharing EQUA_REDIS_URL each embed a scheduler; the lock lets one of them lead.
        leadership = scheduler_leadership(settings)
        if leadership is not None:
            await leadership.start()
            stack.push_async_callback(leadership.stop)
        scheduler = asyncio.create_task(
            run_scheduler(resources, None, first_tick_delay=tick_seconds(settings), leadership=leadership)
        )
        stack.push_async_callback(_cancel, scheduler)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --- processes ---------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def job_process(settings: Settings) -> Any:
    """Engine, Graph client, broker and job resources (yielded, broker set) for a worker or scheduler process."""
    from equa.db.engine import create_engine_for_settings, create_session_factory
    from equa.microsoft.graph import build_graph_client

    async with AsyncExitStack() as stack:
        engine = create_engine_for_settings(settings)
        stack.push_async_callback(engine.dispose)
        graph = build_graph_client(settings)
        stack.push_async_callback(graph.aclose)
        resources = JobResources(settings, create_session_factory(engine), graph)
        build_broker(resources)
        stack.callback(install_enqueue_hook(resources))
        yield resources


async def run_worker(settings: Settings, stop: asyncio.Event, *, concurrency: int = 10) -> None:
    """Take sync tasks from the Redis queue until `stop` is set."""
    from taskiq.receiver import Receiver

    async with job_process(settings) as resources:
        broker = resources.broker
        assert broker is not None
        await broker.startup()
        try:
            while not stop.is_set():
                receiver = Receiver(broker, max_async_tasks=concurrency, run_startup=False)
                try:
                    await receiver.listen(stop)
                except Exception:
                    # A lost Redis connection must not end the worker: listen again after a pause.
                    log.exception("the task listener stopped; listening again")
                    await sleep_or_stop(stop, 1.0)
        finally:
            await broker.shutdown()


def scheduler_leadership(settings: Settings, key: str = DEFAULT_LOCK_KEY) -> SchedulerLeadership | None:
    """The leader lock when a Redis is shared (EQUA_REDIS_URL, else the broker's); None for a lone process."""
    redis_url = settings.redis_url or settings.broker_url
    if not redis_url:
        return None
    return SchedulerLeadership(redis_url, settings.scheduler_lock_seconds, key=key)


async def run_scheduler_process(
    settings: Settings, stop: asyncio.Event, *, lock_key: str = DEFAULT_LOCK_KEY
) -> None:
    async with job_process(settings) as resources:
        broker = resources.broker
        assert broker is not None
        await broker.startup()
        leadership = scheduler_leadership(settings, lock_key)
        try:
            if leadership is not None:
                await leadership.start()
            await run_scheduler(resources, stop, leadership=leadership)
        finally:
            if leadership is not None:
                await leadership.stop()
            await broker.shutdown()


async def run_in_foreground(
    settings: Settings, organization_id: uuid.UUID, *, dry_run: bool, progress: Progress
) -> SyncRun:
    """`equa sync`: create a run and execute it in this process, whatever the broker."""
    from equa.db.engine import create_engine_for_settings, create_session_factory
    from equa.errors import AppError
    from equa.microsoft.graph import build_graph_client

    engine = create_engine_for_settings(settings)
    try:
        session_factory = create_session_factory(engine)
        lease_seconds = settings.sync_lease_seconds
        async with session_factory() as session:
            organization = await repository.organization(session, organization_id)
            if organization is None:
                raise AppError(
                    404,
                    "not_found",
                    f"No organization has the id {organization_id}.",
                    "Check the organization's id (GET /api/v1/organizations lists yours).",
                )
            await abandon_stale_runs(session, organization.id, lease_seconds=lease_seconds)
            busy = await active_run(session, organization.id)
            if busy is not None:
                raise AppError(
                    409,
                    "sync_in_progress",
                    f"A sync of this organization is already {busy.status} (run {busy.id}).",
                    "Wait for it to finish, or follow it with GET .../sync-runs/{id}.",
                )
            run = await request_sync(
                session, organization, None, dry_run, "cli", enqueue=False, lease_seconds=lease_seconds
            )
            await session.commit()
            run_id = run.id
        async with build_graph_client(settings) as graph:
            # A run an outage queued again is tried again here, in the foreground, when its turn comes.
            while (
                await execute_run(
                    session_factory,
                    await graph_for_run(session_factory, graph, settings, organization_id),
                    run_id,
                    scope=GroupScope.from_settings(settings),
                    progress=progress,
                    lease_seconds=lease_seconds,
                    requeue=RequeuePolicy.from_settings(settings),
                )
                == RunStatus.QUEUED.value
            ):
                await wait_for_retry(session_factory, run_id)
        async with session_factory() as session:
            finished = await history_repository.sync_run(session, run_id)
            assert finished is not None
            return finished
    finally:
        await engine.dispose()
