"""The sync lease, on a clock the test moves: a run is abandoned once a whole lease passes without a heartbeat."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.microsoft.models import SyncRun
from equa.microsoft.sync.lifecycle import abandon_stale_runs, beat, claim_run
from equa.organizations.models import Organization

LEASE = 60


async def _queued_run(
    session_factory: async_sessionmaker[AsyncSession],
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
) -> tuple[uuid.UUID, uuid.UUID]:
    organization = await make_org(await make_user())
    async with session_factory() as session:
        run = SyncRun(organization_id=organization.id, trigger="api")
        session.add(run)
        await session.commit()
        return organization.id, run.id


async def _abandon(session_factory: async_sessionmaker[AsyncSession], org_id: uuid.UUID, clock: Any) -> int:
    async with session_factory() as session:
        count = await abandon_stale_runs(session, org_id, lease_seconds=LEASE, clock=clock.utcnow)
        await session.commit()
        return count


async def test_a_running_run_is_abandoned_once_a_whole_lease_passes_without_a_heartbeat(
    session_factory: async_sessionmaker[AsyncSession],
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    clock: Any,
) -> None:
    org_id, run_id = await _queued_run(session_factory, make_user, make_org)
    assert await claim_run(session_factory, run_id) is not None

    clock.advance(LEASE - 1)
    assert await _abandon(session_factory, org_id, clock) == 0  # within the lease: still the worker's
    clock.advance(2)
    assert await _abandon(session_factory, org_id, clock) == 1

    async with session_factory() as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None
        assert (run.status, run.error_code) == ("abandoned", "run_abandoned")
    # The worker's next heartbeat learns it lost the run, so it stops instead of writing over the abandonment.
    assert await beat(session_factory, run_id, done=1, total=2, phase="adding") is False


async def test_a_queued_run_nobody_claims_is_abandoned_after_one_lease(
    session_factory: async_sessionmaker[AsyncSession],
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    clock: Any,
) -> None:
    org_id, run_id = await _queued_run(session_factory, make_user, make_org)
    assert await _abandon(session_factory, org_id, clock) == 0
    clock.advance(LEASE + 1)
    assert await _abandon(session_factory, org_id, clock) == 1
    assert await claim_run(session_factory, run_id) is None  # a late worker can no longer take it
