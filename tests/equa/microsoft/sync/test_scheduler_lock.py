"""Two schedulers are safe: a Redis lock makes one the leader, and a standby takes over when it ends."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sync_support import directory_user, load_tenant, make_team

from equa.db.base import utcnow
from equa.microsoft.models import SyncRun
from equa.microsoft.scheduler import run_scheduler
from equa.microsoft.scheduler_lock import SchedulerLeadership

pytestmark = [pytest.mark.retry_budget("sync"), pytest.mark.redis]

LOCK_SECONDS = 3.0


@pytest_asyncio.fixture
async def lock_key() -> AsyncIterator[tuple[str, str]]:
    """The Redis URL (database 15 only) and a key of this test's own, deleted afterwards."""
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not url:
        pytest.skip("needs EQUA_TEST_REDIS_URL")
    assert url.rstrip("/").endswith("/15"), "the tests use Redis database 15 only"
    key = f"equa-test:{uuid.uuid4().hex}:scheduler:leader"
    yield url, key
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.from_url(url)
    await client.delete(key)
    await client.aclose()


async def _watch(
    schedulers: list[SchedulerLeadership], seconds: float
) -> list[tuple[float, tuple[bool, ...]]]:
    """Who leads, sampled every 20 ms with the time of each sample; never two at once."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sample = tuple(s.leading for s in schedulers)
        assert sum(sample) <= 1, f"two schedulers lead at once: {sample}"
        samples.append((time.monotonic(), sample))
        await asyncio.sleep(0.02)
    return samples


async def test_of_two_schedulers_one_leads_and_the_other_takes_over_when_it_ends(
    lock_key: tuple[str, str],
) -> None:
    url, key = lock_key
    first = SchedulerLeadership(url, LOCK_SECONDS, key=key)
    second = SchedulerLeadership(url, LOCK_SECONDS, key=key)
    await first.start()
    await second.start()
    try:
        samples = await _watch([first, second], 2 * LOCK_SECONDS)  # several renewals
        assert {sample for _, sample in samples} == {(True, False)}

        # A clean stop hands over at once: the standby leads on its next check (a third of the lock's life).
        await first.stop()
        started = time.monotonic()
        while not second.leading:
            assert time.monotonic() - started < LOCK_SECONDS / 3 + 1.0
            await asyncio.sleep(0.02)

        # A leader that dies (no renewal, no release): the standby waits for the lock to expire, never less.
        third = SchedulerLeadership(url, LOCK_SECONDS, key=key)
        await third.start()
        assert second.leading and not third.leading
        assert second._task is not None
        second._task.cancel()  # the process is gone: it renews nothing and releases nothing
        died = time.monotonic()
        samples = await _watch([second, third], 2 * LOCK_SECONDS)
        took_over = next(at for at, (_, leads) in samples if leads) - died
        assert LOCK_SECONDS * 0.5 < took_over < LOCK_SECONDS + LOCK_SECONDS / 3 + 1.0, took_over
        assert samples[-1][1] == (False, True)
        print(f"standby took over {took_over:.1f} s after the leader died (lock {LOCK_SECONDS:g} s)")
        await third.stop()
    finally:
        await first.stop()
        await second.stop()


async def test_a_standby_scheduler_schedules_nothing_until_it_leads(
    app: Any, emu: Any, session_factory: Any, lock_key: tuple[str, str]
) -> None:
    url, key = lock_key
    group_id = load_tenant(emu, [directory_user(0)]).group_id
    organization, _, _ = await make_team(session_factory, [], group_id=group_id, auto_sync=True)
    async with session_factory() as session:
        row = await session.get(type(organization), organization.id)
        row.microsoft_group_linked_at = utcnow() - timedelta(days=30)  # long due
        await session.commit()

    # Another scheduler leads (it holds the key); this one must stand by.
    import redis.asyncio as redis_asyncio

    other = redis_asyncio.from_url(url)
    await other.set(key, "a scheduler elsewhere", px=int(LOCK_SECONDS * 1000))
    standby = SchedulerLeadership(url, LOCK_SECONDS, key=key)
    await standby.start()
    stop = asyncio.Event()
    scheduler = asyncio.create_task(run_scheduler(app.state.jobs, stop, leadership=standby))

    async def scheduled_runs() -> list[SyncRun]:
        async with session_factory() as session:
            return list(
                await session.scalars(
                    select(SyncRun).where(
                        SyncRun.organization_id == organization.id, SyncRun.trigger == "schedule"
                    )
                )
            )

    try:
        # The other leader keeps renewing for a while: nothing is scheduled here meanwhile.
        for _ in range(3):
            await other.pexpire(key, int(LOCK_SECONDS * 1000))
            await asyncio.sleep(LOCK_SECONDS / 2)
            assert not standby.leading
            assert await scheduled_runs() == []
        # The other leader ends: this scheduler leads and schedules the due organization.
        await other.delete(key)
        deadline = time.monotonic() + LOCK_SECONDS + 5
        while not await scheduled_runs():
            assert time.monotonic() < deadline, "the standby never took over"
            await asyncio.sleep(0.1)
        assert standby.leading
    finally:
        stop.set()
        await asyncio.wait_for(scheduler, timeout=10)
        await standby.stop()
        await other.aclose()


async def test_a_scheduler_that_cannot_reach_redis_stands_by_without_failing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1: every attempt fails at once. Scheduling without the lock could double up.
    caplog.set_level("WARNING", logger="equa.microsoft.scheduler")
    unreachable = SchedulerLeadership("redis://127.0.0.1:1/0", 6.0, key="equa-test:unreachable")
    started = time.monotonic()
    await unreachable.start()
    await asyncio.sleep(2.2)  # one more attempt in the background
    assert not unreachable.leading
    await unreachable.stop()
    assert time.monotonic() - started < 5
    assert any("Redis unavailable" in record.getMessage() for record in caplog.records)
