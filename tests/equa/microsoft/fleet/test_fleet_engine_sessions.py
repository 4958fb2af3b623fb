"""A cycle serves far more tenants than the pool has connections: they take turns for sessions instead of
queueing on the pool until it times out and fails them for the cycle."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from equa.microsoft.fleet.cycle import run_fleet_cycle
from equa.microsoft.fleet.sessions import SharedSessions
from equa.microsoft.tenants.models import TenantConnection
from equa.organizations.models import Organization
from equa.settings import Settings

POOL = 2


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    return emulator_settings(
        "chaos", ms_auth_tenant_id="organizations", public_url="http://testserver", db_pool_size=POOL
    )


class CountingSessions:
    """Sessions of a factory, counting how many are open at once."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.open = 0
        self.most = 0

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Any]:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            async with self.factory() as session:
                yield session
        finally:
            self.open -= 1

    def __call__(self) -> AbstractAsyncContextManager[Any]:
        return self._open()


async def test_shared_sessions_open_at_most_the_limit_and_serve_everyone(session_factory: Any) -> None:
    counting = CountingSessions(session_factory)
    shared = SharedSessions(counting, limit=2)  # type: ignore[arg-type]
    served: list[int] = []

    async def tenant(number: int) -> None:
        async with shared() as session:
            await session.execute(select(1))
            await asyncio.sleep(0.02)
            served.append(number)

    await asyncio.gather(*(tenant(n) for n in range(12)))
    assert sorted(served) == list(range(12))
    assert counting.most == 2


async def test_a_cycle_over_more_tenants_than_connections_fails_none(
    app: Any, emu: Any, session_factory: Any
) -> None:
    layout = emu.load_fleet(tenants=8, groups=16, memberships=160, min_members=5, max_members=15)
    emu.set_lag(0)
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
        await session.commit()
    counting = CountingSessions(app.state.jobs.session_factory)
    resources = dataclasses.replace(app.state.jobs, session_factory=counting)

    report = await run_fleet_cycle(resources)

    assert report.tenants == 8
    assert report.failed_tenants == []
    assert report.full_reconciles == 16  # every organization's first reconcile was asked for
    assert counting.most <= POOL
