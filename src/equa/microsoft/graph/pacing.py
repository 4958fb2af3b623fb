"""Request pacing: spend Microsoft's per-app-and-tenant budgets evenly instead of running into 429 answers.

Graph allows each app 3,000 writes per 2.5 minutes in a tenant, and 3,500 to 8,000 resource units per 10 s by tenant
size (reference README, Throttling). Every write request counts once, whether it stands alone or sits inside a
$batch, and a PATCH binding 20 members is one write. A first sync of 100,000 members sends 5,000 such PATCHes: sent
as fast as possible, 2,000 of them come back 429 again and again until retries run out. The Graph client takes each
request's cost from a token bucket per tenant, a little under each limit, before sending it, so every caller (a
sync, an admin adding one member) waits for its turn instead. With EQUA_REDIS_URL set the buckets live in Redis,
so every API process and worker of a deployment shares them; otherwise each Graph client keeps its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from equa.microsoft.graph.batch import WRITE_METHODS
from equa.microsoft.graph.metrics import GRAPH_PACING_WAIT_SECONDS, GRAPH_PACING_WAITS

log = logging.getLogger("equa.microsoft.graph.pacing")


@dataclass(frozen=True)
class Budget:
    """`capacity` units, refilled evenly over `window` seconds."""

    name: str
    capacity: float
    window: float

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.window <= 0:
            raise ValueError(f"budget {self.name!r} needs a positive capacity and window")

    @property
    def rate(self) -> float:
        return self.capacity / self.window


# Below Microsoft's limits, leaving room for another app of the same tenant's writes.
WRITES = Budget("writes", capacity=2_850, window=150.0)
# Under the smallest tenant's 3,500 resource units per 10 s, so the pace is safe whatever the tenant's size.
RESOURCE_UNITS = Budget("resource-units", capacity=3_200, window=10.0)


@dataclass(frozen=True)
class RequestCost:
    """What sending a request takes from the tenant's budgets."""

    writes: int = 0
    resource_units: int = 0

    def __add__(self, other: RequestCost) -> RequestCost:
        return RequestCost(self.writes + other.writes, self.resource_units + other.resource_units)


FREE = RequestCost()


def request_cost(method: str, url: str, params: Mapping[str, Any] | None = None) -> RequestCost:
    """Microsoft's price of one request; `url` is relative to the version root (e.g. /users?$select=id).

    A write is one write and one resource unit. A read costs 3 units for a group's members, 2 for users, 1 for
    anything else; $select takes one off, $expand adds one, $top under 20 takes one off, never below 1.
    """
    if method.upper() in WRITE_METHODS:
        return RequestCost(writes=1, resource_units=1)
    parsed = httpx.URL(url)
    query = {key.lower(): value for key, value in parsed.params.multi_items()}
    query.update({str(key).lower(): str(value) for key, value in (params or {}).items()})
    segments = [segment.lower() for segment in parsed.path.split("/") if segment]
    if len(segments) >= 3 and segments[0] == "groups" and segments[2] == "members":
        units = 3
    elif segments and segments[0] == "users":
        units = 2
    else:
        units = 1
    if "$select" in query:
        units -= 1
    if "$expand" in query:
        units += 1
    top = query.get("$top", "")
    if top.isdigit() and int(top) < 20:
        units -= 1
    return RequestCost(resource_units=max(1, units))


class TokenBuckets(Protocol):
    async def take(self, tenant: str, budget: Budget, units: float) -> float:
        """Wait until `units` of the tenant's budget are free, take them; returns the seconds waited."""
        ...

    async def aclose(self) -> None: ...


class InProcessTokenBuckets:
    """Token buckets for this process only.

    A caller reserves its units at once, driving the level below zero if need be, and sleeps until the bucket has
    refilled to where its reservation ends: callers are served in the order they came, without a lock.
    """

    # Past this many buckets, the ones refilled to capacity (the same as no bucket) are forgotten.
    PRUNE_ABOVE = 1024

    def __init__(self) -> None:
        self._levels: dict[tuple[str, str], tuple[float, float]] = {}
        self._rates: dict[str, tuple[float, float]] = {}  # budget name -> (capacity, rate)
        self._prune_at = self.PRUNE_ABOVE

    def __len__(self) -> int:
        return len(self._levels)

    def _prune(self, now: float) -> None:
        for key, (level, stamp) in list(self._levels.items()):
            capacity, rate = self._rates[key[1]]
            if level + (now - stamp) * rate >= capacity:
                del self._levels[key]
        # Busy buckets stay: the next pass waits for twice as many, so pruning costs O(1) per take on average.
        self._prune_at = max(self.PRUNE_ABOVE, 2 * len(self._levels))

    async def take(self, tenant: str, budget: Budget, units: float) -> float:
        key = (tenant, budget.name)
        now = time.monotonic()
        self._rates[budget.name] = (budget.capacity, budget.rate)
        if len(self._levels) > self._prune_at:
            self._prune(now)
        level, stamp = self._levels.get(key, (budget.capacity, now))
        level = min(budget.capacity, level + (now - stamp) * budget.rate) - min(units, budget.capacity)
        self._levels[key] = (level, now)
        if level >= 0:
            return 0.0
        pause = -level / budget.rate
        await asyncio.sleep(pause)
        return pause

    async def aclose(self) -> None:
        return None


# Refill by Redis' own clock, take if there is enough; answers the milliseconds to wait otherwise (0: taken).
_TAKE_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local units = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'level', 'stamp')
local level = tonumber(state[1]) or capacity
local stamp = tonumber(state[2]) or now_ms
level = math.min(capacity, level + (now_ms - stamp) * per_ms)
local ttl = math.ceil(capacity / per_ms) + 1000
if level >= units or units > capacity then
  redis.call('HSET', KEYS[1], 'level', tostring(level - units), 'stamp', tostring(now_ms))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 0
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'stamp', tostring(now_ms))
redis.call('PEXPIRE', KEYS[1], ttl)
return math.ceil((units - level) / per_ms)
"""


class RedisTokenBuckets:
    """Token buckets shared by every process pointing at the same Redis."""

    def __init__(self, redis_url: str, *, key_prefix: str = "equa:graph:pace") -> None:
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(redis_url)
        self._prefix = key_prefix
        self._script = self._redis.register_script(_TAKE_SCRIPT)

    async def take(self, tenant: str, budget: Budget, units: float) -> float:
        key = f"{self._prefix}:{budget.name}:{tenant}"
        waited = 0.0
        while True:
            try:
                wait_ms = int(
                    await self._script(keys=[key], args=[budget.capacity, budget.rate / 1000, units])
                )
            except Exception as error:  # pacing is a courtesy: without Redis, Graph's own 429s still pace us
                log.warning(
                    "request pacing through Redis unavailable (%s); sending unpaced", type(error).__name__
                )
                return waited
            if wait_ms <= 0:
                return waited
            await asyncio.sleep(wait_ms / 1000)
            waited += wait_ms / 1000

    async def aclose(self) -> None:
        await self._redis.aclose()


class RequestPacer:
    """Takes each request's cost from its tenant's write and resource-unit budgets before it is sent."""

    def __init__(
        self,
        buckets: TokenBuckets | None = None,
        *,
        writes: Budget = WRITES,
        resource_units: Budget = RESOURCE_UNITS,
    ) -> None:
        self._buckets: TokenBuckets = buckets or InProcessTokenBuckets()
        self.writes = writes
        self.resource_units = resource_units

    async def pace(self, tenant: str, cost: RequestCost) -> float:
        """Wait for the tenant's turn to send a request costing this much; returns the seconds waited."""
        waited = 0.0
        if cost.resource_units:
            waited += await self._buckets.take(tenant, self.resource_units, cost.resource_units)
        if cost.writes:
            waited += await self._buckets.take(tenant, self.writes, cost.writes)
        if waited > 0:
            GRAPH_PACING_WAITS.inc()
            GRAPH_PACING_WAIT_SECONDS.inc(waited)
        if waited >= 1:
            log.info("tenant %s: waited %.1f s to stay under Microsoft's request limits", tenant, waited)
        return waited

    async def aclose(self) -> None:
        await self._buckets.aclose()


def build_request_pacer(
    redis_url: str | None, *, writes: Budget = WRITES, resource_units: Budget = RESOURCE_UNITS
) -> RequestPacer:
    """Buckets in Redis when the deployment has one, so all its processes share a tenant's budget."""
    buckets: TokenBuckets = RedisTokenBuckets(redis_url) if redis_url else InProcessTokenBuckets()
    return RequestPacer(buckets, writes=writes, resource_units=resource_units)
