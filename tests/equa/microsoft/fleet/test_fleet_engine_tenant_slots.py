"""EQUA_SYNC_TENANT_CONCURRENCY: runs of one tenant at once, across workers; a run that must wait for a slot goes
back on the queue (holding no worker slot) and runs soon after, not a lease later."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fleet_engine_support import cycle_and_wait, link_teams, load_groups, runs_of

from equa.microsoft.fleet.tenant_slots import LocalTenantSlots, RedisTenantSlots, run_in_slot
from equa.settings import Settings


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    return emulator_settings("sync", sync_tenant_concurrency=1)


async def test_a_tenant_runs_one_sync_at_a_time_with_a_limit_of_one_and_none_waits_for_its_lease(
    app: Any, emu: Any, session_factory: Any
) -> None:
    tenant = load_groups(emu, 4)
    await link_teams(session_factory, tenant)
    report = await cycle_and_wait(app.state.jobs)  # every run succeeds within 30 s (the lease is 120 s)
    runs = sorted(await runs_of(session_factory, report.run_ids), key=lambda r: r.started_at)
    assert len(runs) == 4
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None and later.started_at is not None
        assert later.started_at >= earlier.finished_at, "two runs of one tenant ran at once"
    # Those that waited had their turn moved, not their lease spent: none was abandoned.
    assert {r.status for r in runs} == {"succeeded"}


async def test_local_slots_refuse_a_second_run_of_a_full_tenant_but_not_of_another() -> None:
    slots = LocalTenantSlots(limit=1)
    assert await slots.acquire("tenant-a", "run-1")
    assert await slots.acquire("tenant-a", "run-1")  # the same run again (a second message) keeps its slot
    assert not await slots.acquire("TENANT-A", "run-2")
    assert await slots.acquire("tenant-b", "run-3")
    await slots.release("tenant-a", "run-1")
    assert await slots.acquire("tenant-a", "run-2")


@pytest.mark.redis
async def test_redis_slots_are_shared_by_workers_and_a_dead_workers_slot_lapses() -> None:
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not url:
        pytest.skip("EQUA_TEST_REDIS_URL is not set: no Redis to share tenant slots through")
    tenant = f"equa-test-{uuid.uuid4().hex}"
    # Two instances on their own connections stand for two worker processes.
    first, second = RedisTenantSlots(url, 2, lease_seconds=1.0), RedisTenantSlots(url, 2, lease_seconds=1.0)
    try:
        started = asyncio.Event()
        finish = asyncio.Event()

        async def body() -> str:
            started.set()
            await finish.wait()
            return "succeeded"

        running = asyncio.create_task(run_in_slot(first, tenant, "run-1", body, 1.0))
        await started.wait()
        assert await second.acquire(tenant, "run-2")
        assert not await second.acquire(tenant, "run-3")  # the tenant's two slots are taken, across workers
        assert await second.held(tenant) == 2
        # run-2's worker dies without giving its slot back: it lapses after the lease; run-1's is kept alive.
        await asyncio.sleep(1.6)
        assert await second.acquire(tenant, "run-3")
        assert not await first.acquire(tenant, "run-4")
        finish.set()
        assert await running == "succeeded"
        assert await first.acquire(tenant, "run-4")  # run-1 gave its slot back when it ended
    finally:
        await first.aclose()
        await second.aclose()
