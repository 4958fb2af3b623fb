"""The scheduler loop: every tick the fleet cycle, every interval the linked groups' health check and the retention
of old outcomes and audit events. One process leads it at a time (scheduler_lock.py); tasks.py starts it, embedded in
the API process or as `equa scheduler`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from equa.microsoft.fleet.cycle import run_fleet_cycle
from equa.microsoft.health_task import check_linked_groups
from equa.microsoft.tenants.health import check_tenants, tenant_of_organizations

if TYPE_CHECKING:
    from equa.microsoft.scheduler_lock import SchedulerLeadership
    from equa.microsoft.tasks import JobResources
    from equa.settings import Settings

# The scheduler's messages keep the logger name they always had, which operators' log filters rely on.
log = logging.getLogger("equa.microsoft.tasks")


def tick_seconds(settings: Settings) -> float:
    return float(min(60, max(1, settings.sync_interval_seconds // 10)))


async def _health_check(resources: JobResources) -> None:
    try:
        if resources.settings.multi_tenant:
            await check_tenants(resources.session_factory, resources.graph)
            tenants = await tenant_of_organizations(resources.session_factory)
            await check_linked_groups(resources.session_factory, resources.graph, tenants)
        else:
            await check_linked_groups(resources.session_factory, resources.graph)
    except Exception:
        log.exception("health check of linked groups failed")


async def _prune(resources: JobResources) -> None:
    from equa.microsoft.retention import prune

    settings = resources.settings
    try:
        pruned = await prune(
            resources.session_factory,
            keep_runs=settings.sync_run_retention,
            audit_days=settings.audit_retention_days,
        )
    except Exception:
        log.exception("retention of sync outcomes and audit events failed")
        return
    if pruned.outcomes or pruned.audit_events:
        log.info(
            "retention: deleted %d outcome(s) of %d old run(s) and %d audit event(s)",
            pruned.outcomes,
            pruned.runs,
            pruned.audit_events,
        )


async def run_scheduler(
    resources: JobResources,
    stop: asyncio.Event | None,
    *,
    first_tick_delay: float = 0.0,
    leadership: SchedulerLeadership | None = None,
) -> None:
    """Every tick: the fleet cycle (fleet/cycle.py: delta rounds, targeted runs, due full reconciles); every
    interval: the linked groups' health check and the retention of old outcomes and audit events.

    With `leadership` (a Redis lock shared by every scheduler) only the leader ticks; the others stand by and
    check often enough to take over within EQUA_SCHEDULER_LOCK_SECONDS of the leader's end.
    """
    tick = tick_seconds(resources.settings)
    interval = resources.settings.sync_interval_seconds
    loop = asyncio.get_running_loop()
    next_health = loop.time() + first_tick_delay
    if first_tick_delay and await sleep_or_stop(stop, first_tick_delay):
        return
    while stop is None or not stop.is_set():
        if leadership is not None and not leadership.leading:
            if await sleep_or_stop(stop, min(tick, leadership.lock_seconds / 3)):
                return
            continue
        try:
            report = await run_fleet_cycle(resources)
            if report.run_ids:
                log.info(
                    "fleet cycle: %d full reconcile(s), %d targeted run(s)",
                    report.full_reconciles,
                    report.targeted_runs,
                )
        except Exception:
            log.exception("scheduler tick failed")
        if loop.time() >= next_health:
            await _health_check(resources)
            await _prune(resources)
            next_health = loop.time() + interval
        if await sleep_or_stop(stop, tick):
            return


async def sleep_or_stop(stop: asyncio.Event | None, seconds: float) -> bool:
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
