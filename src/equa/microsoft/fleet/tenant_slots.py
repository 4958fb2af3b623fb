"""How many runs of one tenant run at once, across every worker (EQUA_SYNC_TENANT_CONCURRENCY).

A worker takes a tenant slot before it claims a run and gives it back when the run ends. A run whose tenant has no
free slot is not run and does not wait inside the worker (which would hold one of its `--concurrency` slots, so a
throttled tenant could fill every worker): it is put back on the queue a moment later, with its turn (retry_at)
moved, and the fleet cycle enqueues again any queued run whose turn passed unclaimed (message lost with a worker).

Slots live in Redis when workers share one (EQUA_REDIS_URL, else the broker's): a sorted set per tenant, a member
per run scored by when its slot lapses, so a worker that dies frees its slots a lease later. Embedded (one process),
an in-process count does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

KEY_PREFIX = "equa:tenant-slots:"

# Drop lapsed slots, then take one if the run holds one already or a slot is free: in one step on the server.
_ACQUIRE = """
local now_ms = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""


class TenantSlots(Protocol):
    limit: int

    async def acquire(self, tenant_id: str, run_id: str) -> bool: ...

    async def refresh(self, tenant_id: str, run_id: str) -> None: ...

    async def release(self, tenant_id: str, run_id: str) -> None: ...


class LocalTenantSlots:
    """One process's slots (embedded mode)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, set[str]] = {}

    async def acquire(self, tenant_id: str, run_id: str) -> bool:
        held = self._held.setdefault(tenant_id.lower(), set())
        if run_id in held or len(held) < self.limit:
            held.add(run_id)
            return True
        return False

    async def refresh(self, tenant_id: str, run_id: str) -> None:
        return None

    async def release(self, tenant_id: str, run_id: str) -> None:
        self._held.get(tenant_id.lower(), set()).discard(run_id)

    def held(self, tenant_id: str) -> int:
        return len(self._held.get(tenant_id.lower(), set()))


class RedisTenantSlots:
    """Slots shared by every worker through Redis; a slot lapses `lease_seconds` after its last refresh."""

    def __init__(self, redis_url: str, limit: int, lease_seconds: float) -> None:
        import redis.asyncio as redis_asyncio

        self.limit = limit
        self._lease_ms = int(lease_seconds * 1000)
        self._redis: Any = redis_asyncio.from_url(redis_url)
        self._acquire: Any = self._redis.register_script(_ACQUIRE)

    async def acquire(self, tenant_id: str, run_id: str) -> bool:
        now_ms = int(time.time() * 1000)
        taken = await self._acquire(
            keys=[KEY_PREFIX + tenant_id.lower()], args=[now_ms, self._lease_ms, run_id, self.limit]
        )
        return bool(taken)

    async def refresh(self, tenant_id: str, run_id: str) -> None:
        await self.acquire(tenant_id, run_id)

    async def release(self, tenant_id: str, run_id: str) -> None:
        await self._redis.zrem(KEY_PREFIX + tenant_id.lower(), run_id)

    async def held(self, tenant_id: str) -> int:
        return int(await self._redis.zcount(KEY_PREFIX + tenant_id.lower(), int(time.time() * 1000), "+inf"))

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_tenant_slots(redis_url: str | None, limit: int, lease_seconds: float) -> TenantSlots:
    if redis_url:
        return RedisTenantSlots(redis_url, limit, lease_seconds)
    return LocalTenantSlots(limit)


TENANT_BUSY = "tenant_busy"  # what a task answers when its run's tenant had no free slot


async def run_in_slot(
    slots: TenantSlots,
    tenant_id: str,
    run_id: str,
    body: Callable[[], Awaitable[str | None]],
    lease_seconds: float,
) -> str | None:
    """`body()` in a slot of the tenant, kept while it runs; TENANT_BUSY (and `body` not called) when none is free."""
    if not await slots.acquire(tenant_id, run_id):
        return TENANT_BUSY

    async def keep() -> None:
        while True:
            await asyncio.sleep(max(1.0, lease_seconds / 3))
            await slots.refresh(tenant_id, run_id)

    keeper = asyncio.create_task(keep())
    try:
        return await body()
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await keeper
        await slots.release(tenant_id, run_id)
