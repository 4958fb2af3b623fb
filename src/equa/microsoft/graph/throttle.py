"""Throttle gates: once Graph throttles a tenant, every caller of that tenant waits; plus an in-flight cap."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from equa.microsoft.graph.metrics import GRAPH_THROTTLED_WAIT_SECONDS, GRAPH_THROTTLED_WAITS

log = logging.getLogger("equa.microsoft.graph.throttle")


class ThrottleGate(Protocol):
    async def wait_turn(self, tenant: str) -> float:
        """Wait while the tenant is throttled; return the seconds waited."""
        ...

    async def block(self, tenant: str, seconds: float) -> None:
        """Hold every caller of the tenant back for `seconds` from now (never shortens an existing block)."""
        ...

    def slot(self, tenant: str) -> contextlib.AbstractAsyncContextManager[None]:
        """One of the tenant's limited in-flight request slots."""
        ...

    async def aclose(self) -> None: ...


def _record_wait(waited: float) -> None:
    if waited > 0:
        GRAPH_THROTTLED_WAITS.inc()
        GRAPH_THROTTLED_WAIT_SECONDS.inc(waited)


class InProcessThrottleGate:
    """The gate for one process (the embedded deployment)."""

    def __init__(self, max_in_flight: int) -> None:
        self._max_in_flight = max_in_flight
        self._blocked_until: dict[str, float] = {}
        # Per tenant: its semaphore and how many callers hold or wait for it; both go when the last one leaves, so
        # with thousands of tenants only the busy ones take memory.
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}

    async def wait_turn(self, tenant: str) -> float:
        started = time.monotonic()
        while True:
            remaining = self._blocked_until.get(tenant, 0.0) - time.monotonic()
            if remaining <= 0:
                self._blocked_until.pop(tenant, None)  # over: nothing to remember
                break
            await asyncio.sleep(remaining)
        waited = time.monotonic() - started
        _record_wait(waited if waited > 0.001 else 0.0)
        return waited

    async def block(self, tenant: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        if until > self._blocked_until.get(tenant, 0.0):
            self._blocked_until[tenant] = until
            log.warning("tenant %s throttled by Graph: holding its requests for %.1f s", tenant, seconds)

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        semaphore = self._semaphores.get(tenant)
        if semaphore is None:
            semaphore = self._semaphores[tenant] = asyncio.Semaphore(self._max_in_flight)
        self._users[tenant] = self._users.get(tenant, 0) + 1
        try:
            async with semaphore:
                yield
        finally:
            left = self._users[tenant] - 1
            if left:
                self._users[tenant] = left
            else:
                del self._users[tenant]
                del self._semaphores[tenant]

    def tenants_held(self) -> int:
        """Tenants this gate keeps state for now (busy or throttled ones)."""
        return len(self._semaphores.keys() | self._blocked_until.keys())

    async def aclose(self) -> None:
        return None


# Extends the block only when the new one ends later, using Redis' own clock (PTTL), so hosts' clocks don't matter.
_BLOCK_SCRIPT = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""

# A counting semaphore made of leases with expiry, so a crashed worker's slots come back by themselves.
_ACQUIRE_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""


# How often a process that cannot reach Redis says so (once per outage would hide a long one; every request floods).
REDIS_DOWN_WARNING_INTERVAL = 60.0


class RedisThrottleGate:
    """The gate shared by every process that points at the same Redis (scaled-out workers).

    If Redis does not answer, the process falls back to its own in-process gate (same in-flight cap, blocks it saw
    itself) instead of failing Graph calls: the gate is a courtesy to Microsoft, whose 429s still reach the retry
    policy, and Redis being down must not take the Microsoft 365 integration down with it.
    """

    def __init__(
        self,
        redis_url: str,
        max_in_flight: int,
        *,
        lease_seconds: float = 120.0,
        key_prefix: str = "equa:graph",
        poll_seconds: float = 0.02,
    ) -> None:
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(redis_url)
        self._max_in_flight = max_in_flight
        self._lease_ms = int(lease_seconds * 1000)
        self._prefix = key_prefix
        self._poll = poll_seconds
        self._block_script = self._redis.register_script(_BLOCK_SCRIPT)
        self._acquire_script = self._redis.register_script(_ACQUIRE_SCRIPT)
        self._local = InProcessThrottleGate(max_in_flight)
        self._last_warning = -REDIS_DOWN_WARNING_INTERVAL

    def _redis_failed(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= REDIS_DOWN_WARNING_INTERVAL:
            self._last_warning = now
            log.warning(
                "Graph throttle gate: Redis does not answer (%s); this process limits itself alone until it does",
                type(error).__name__,
            )

    def _key(self, kind: str, tenant: str) -> str:
        return f"{self._prefix}:{kind}:{tenant}"

    async def wait_turn(self, tenant: str) -> float:
        started = time.monotonic()
        key = self._key("blocked", tenant)
        try:
            while True:
                remaining_ms = await self._redis.pttl(key)
                if remaining_ms is None or remaining_ms <= 0:
                    break
                await asyncio.sleep(remaining_ms / 1000)
        except Exception as error:  # any Redis failure: fall back, never fail the Graph call
            self._redis_failed(error)
            return time.monotonic() - started + await self._local.wait_turn(tenant)
        waited = time.monotonic() - started
        _record_wait(waited if waited > 0.001 else 0.0)
        return waited

    async def block(self, tenant: str, seconds: float) -> None:
        await self._local.block(tenant, seconds)  # also kept locally, for the time Redis may be away
        milliseconds = max(1, int(seconds * 1000))
        try:
            await self._block_script(keys=[self._key("blocked", tenant)], args=[milliseconds])
        except Exception as error:
            self._redis_failed(error)

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        key = self._key("in-flight", tenant)
        lease = uuid.uuid4().hex
        try:
            while not await self._acquire_script(
                keys=[key], args=[self._max_in_flight, self._lease_ms, lease]
            ):
                await asyncio.sleep(self._poll)
        except Exception as error:
            self._redis_failed(error)
            async with self._local.slot(tenant):
                yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # an unreturned lease expires by itself
                await self._redis.zrem(key, lease)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()


def build_throttle_gate(redis_url: str | None, max_in_flight: int) -> ThrottleGate:
    if redis_url:
        return RedisThrottleGate(redis_url, max_in_flight)
    return InProcessThrottleGate(max_in_flight)
