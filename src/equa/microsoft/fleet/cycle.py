"""The fleet cycle, run by the scheduler every tick: every tenant at once, each on its own (a slow or throttled
tenant delays nobody else); per tenant, its delta rounds (rounds.py), then its runs (scheduling.py).

A cycle with no changes costs one Graph request per 50 linked groups (compaction.py merges rounds left with free
places); a change costs its organization one targeted
run; a full reconcile runs per group every EQUA_FULL_RECONCILE_INTERVAL and when its deltaLink expires.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from equa.db.base import utcnow
from equa.microsoft import repository
from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.fleet.dispatch import requeue_overdue_runs
from equa.microsoft.fleet.outbox import spread_user_changes
from equa.microsoft.fleet.rounds import TenantRounds, advance_rounds
from equa.microsoft.fleet.scheduling import TenantRuns, schedule_tenant_runs
from equa.microsoft.fleet.sessions import SharedSessions
from equa.microsoft.sync.lifecycle import abandon_stale_runs
from equa.microsoft.tenants import repository as tenants_repository
from equa.microsoft.tenants.routing import paused_organization_ids

if TYPE_CHECKING:
    from equa.microsoft.graph import GraphClient
    from equa.microsoft.tasks import JobResources
    from equa.settings import Settings

log = logging.getLogger("equa.microsoft.fleet")


@dataclass
class FleetCycleReport:
    """What a cycle did: Graph requests of its delta rounds, runs it queued, tenants it served."""

    delta_requests: int = 0
    full_reconciles: int = 0
    targeted_runs: int = 0
    run_ids: list[uuid.UUID] = field(default_factory=list)
    tenants: int = 0
    expired_groups: int = 0
    failed_tenants: list[str] = field(default_factory=list)
    requeued: int = 0  # queued runs enqueued again: their turn had passed unclaimed
    merged_rounds: int = 0  # delta rounds replaced by fewer, fuller ones (compaction.py)


@dataclass
class TenantWork:
    tenant_id: str
    graph: GraphClient
    linked: dict[str, uuid.UUID]  # group id (lower case) -> organization


async def run_fleet_cycle(resources: JobResources, *, now: datetime | None = None) -> FleetCycleReport:
    """One cycle over the whole fleet; `now` decides which full reconciles are due (tests and the bench move it)."""
    settings = resources.settings
    now = now or utcnow()
    async with resources.session_factory() as session:
        await abandon_stale_runs(session, lease_seconds=settings.sync_lease_seconds)
        work = await _tenants(session, settings, resources.graph)
        await fleet_repository.settle_changes_of_ended_runs(session)
        await spread_user_changes(session)
        tracked = {org for tenant in work for org in tenant.linked.values()}
        paused = await paused_organization_ids(session, settings)
        await fleet_repository.drop_changes_of_untracked(session, tracked | paused)
        await session.commit()

    sessions = SharedSessions(resources.session_factory, settings.db_pool_size)
    results = await asyncio.gather(
        *(_run_tenant(resources, sessions, tenant, now) for tenant in work), return_exceptions=True
    )
    report = FleetCycleReport(tenants=len(work))
    report.requeued = await requeue_overdue_runs(resources, settings.sync_lease_seconds / 2)
    for tenant, result in zip(work, results, strict=True):
        if isinstance(result, BaseException):
            log.error(
                "fleet cycle: tenant %s failed: %s", tenant.tenant_id, type(result).__name__, exc_info=result
            )
            report.failed_tenants.append(tenant.tenant_id)
            continue
        rounds, runs = result
        report.delta_requests += rounds.requests
        report.expired_groups += len(rounds.expired_groups)
        report.merged_rounds += rounds.merged_rounds
        report.full_reconciles += len(runs.full)
        report.targeted_runs += len(runs.targeted)
        report.run_ids += runs.full + runs.targeted
    return report


async def _run_tenant(
    resources: JobResources, sessions: SharedSessions, tenant: TenantWork, now: datetime
) -> tuple[TenantRounds, TenantRuns]:
    settings = resources.settings
    rounds = await advance_rounds(sessions, tenant.graph, tenant.tenant_id, tenant.linked, now)
    runs = await schedule_tenant_runs(
        sessions,
        sorted(set(tenant.linked.values()), key=str),
        now=now,
        full_interval_seconds=settings.full_reconcile_interval_seconds,
        lease_seconds=settings.sync_lease_seconds,
    )
    return rounds, runs


async def _tenants(session: AsyncSession, settings: Settings, graph: GraphClient) -> list[TenantWork]:
    """The tracked groups (autoSync on, a group linked, tenant not paused) by tenant, each with its Graph client."""
    organizations = await repository.auto_sync_organizations(session)
    if not settings.multi_tenant:
        linked = {
            str(o.microsoft_group).lower(): o.id for o in organizations if o.microsoft_group is not None
        }
        return [TenantWork(graph.tenant, graph, linked)] if linked else []
    tenant_of = {
        org: tenant
        for tenant, orgs in (await tenants_repository.connected_tenants(session)).items()
        for org in orgs
    }
    by_tenant: dict[str, dict[str, uuid.UUID]] = {}
    for organization in organizations:
        tenant_id = tenant_of.get(organization.id)
        if tenant_id is None or organization.microsoft_group is None:
            continue  # not connected, or its consent revoked: paused until it reconnects
        by_tenant.setdefault(tenant_id, {})[str(organization.microsoft_group).lower()] = organization.id
    return [TenantWork(t, graph.for_tenant(t), linked) for t, linked in sorted(by_tenant.items())]
