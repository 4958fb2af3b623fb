"""Tenants are served each on their own: one throttled hard (fault injection) does not delay another's runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from equa.microsoft.fleet.cycle import run_fleet_cycle
from equa.microsoft.models import RunStatus, SyncRun
from equa.microsoft.tenants.models import TenantConnection
from equa.organizations.models import Organization
from equa.settings import Settings


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    # Multi-tenant mode, and the small retry budget of the chaos tests: a throttled call gives up within seconds.
    return emulator_settings("chaos", ms_auth_tenant_id="organizations", public_url="http://testserver")


async def link_fleet(session_factory: Any, layout: dict[str, Any]) -> dict[str, list[uuid.UUID]]:
    """An organization per group of the fleet (autoSync on, no team yet), connected to the group's tenant."""
    by_tenant: dict[str, list[uuid.UUID]] = {}
    async with session_factory() as session:
        for tenant in layout["tenants"]:
            for group in tenant["groups"]:
                organization = Organization(
                    name=f"Org of {group['id'][:8]}",
                    microsoft_group=uuid.UUID(group["id"]),
                    microsoft_auto_sync=True,
                )
                session.add(organization)
                await session.flush()
                session.add(
                    TenantConnection(
                        organization_id=organization.id,
                        tenant_id=tenant["id"],
                        tenant_name=tenant["domain"],
                        tenant_domain=tenant["domain"],
                    )
                )
                by_tenant.setdefault(tenant["id"], []).append(organization.id)
        await session.commit()
    return by_tenant


async def finished_runs(session_factory: Any, organization_ids: list[uuid.UUID]) -> list[SyncRun]:
    async with session_factory() as session:
        runs = await session.scalars(select(SyncRun).where(SyncRun.organization_id.in_(organization_ids)))
        return [r for r in runs if r.finished_at is not None]


async def test_a_throttled_tenant_does_not_delay_another_tenants_runs(
    app: Any, emu: Any, session_factory: Any
) -> None:
    layout = emu.load_fleet(tenants=2, groups=4, memberships=40, min_members=5, max_members=15)
    emu.set_lag(0)
    slow, fast = layout["tenants"][0]["id"], layout["tenants"][1]["id"]
    organizations = await link_fleet(session_factory, layout)
    emu.throttle_tenant(slow, rate_429=1.0, retry_after_seconds=2)

    cycle = asyncio.create_task(run_fleet_cycle(app.state.jobs))
    # The other tenant's first reconciles run to their end while the throttled tenant still waits on Graph.
    for _ in range(200):
        done = await finished_runs(session_factory, organizations[fast])
        if len(done) == len(organizations[fast]) or cycle.done():
            break
        await asyncio.sleep(0.05)
    assert not cycle.done(), "the cycle ended before the throttled tenant's retries ran out"
    assert [r.status for r in done] == [RunStatus.SUCCEEDED.value] * len(organizations[fast])
    report = await cycle
    assert report.tenants == 2
    emu.throttle_tenant(slow, rate_429=0)
    stats = emu.stats()
    assert stats["throttled"] > 0
