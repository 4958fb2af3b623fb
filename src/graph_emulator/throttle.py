"""Token-bucket throttling in resource units and writes, per Microsoft's identity-and-access service limits."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

# Resource units per 10 s per app+tenant, by tenant size.
RU_QUOTA = {"S": 3500, "M": 5000, "L": 8000}
RU_WINDOW = 10.0
APP_WRITES = (3000, 150.0)  # per app+tenant per 2.5 min
TENANT_WRITES = (18000, 300.0)  # per tenant per 5 min
APP_ALL_TENANTS_RU = (150000, 20.0)
GLOBAL_REQUESTS = (130000, 10.0)
WARN_FRACTION = 0.8


@dataclass
class Bucket:
    capacity: float
    window: float  # seconds of emulated time to refill from empty
    level: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.level < 0:
            self.level = self.capacity

    def refill(self, now: float, time_scale: float) -> None:
        rate = self.capacity / self.window * time_scale
        self.level = min(self.capacity, self.level + (now - self.stamp) * rate)
        self.stamp = now

    def wait_for(self, cost: float, time_scale: float) -> float:
        """Real seconds until `cost` units are available (0 when they are now)."""
        if self.level >= cost:
            return 0.0
        rate = self.capacity / self.window * time_scale
        return (cost - self.level) / rate

    def used_fraction(self) -> float:
        return 1.0 - self.level / self.capacity


@dataclass
class Verdict:
    retry_after: int = 0  # seconds; 0 means allowed
    scope: str = ""
    information: str = ""
    limit_percentage: float | None = None


@dataclass
class TenantThrottle:
    """A tenant throttled hard on purpose: this share of its requests answers 429, whatever its buckets hold."""

    rate_429: float
    retry_after_seconds: int = 1


class Throttle:
    def __init__(self, time_scale: float = 1.0, enabled: bool = True) -> None:
        self.time_scale = time_scale
        self.enabled = enabled
        self.buckets: dict[tuple[str, ...], Bucket] = {}
        self.hard: dict[str, TenantThrottle] = {}  # by tenant id; applies even with throttling off
        self.rng = random.Random(0)

    def reset(self) -> None:
        self.buckets.clear()
        self.hard.clear()

    def throttle_tenant(self, tenant_id: str, rate_429: float, retry_after_seconds: int = 1) -> None:
        if not 0.0 <= rate_429 <= 1.0:
            raise ValueError("rate_429 must be a probability between 0 and 1")
        if retry_after_seconds < 1:
            raise ValueError("retry_after_seconds must be 1 or more")
        if rate_429 == 0:
            self.hard.pop(tenant_id, None)
        else:
            self.hard[tenant_id] = TenantThrottle(rate_429, retry_after_seconds)

    def _bucket(self, key: tuple[str, ...], capacity: float, window: float) -> Bucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(capacity, window)
        return bucket

    def charge(self, tenant_id: str, tenant_size: str, app_id: str, units: int, is_write: bool) -> Verdict:
        """Take the request's cost from every bucket it draws on, or say how long to wait."""
        hard = self.hard.get(tenant_id)
        if hard is not None and self.rng.random() < hard.rate_429:
            return Verdict(
                retry_after=hard.retry_after_seconds,
                scope=f"Tenant_Application/ReadWrite/{app_id}/{tenant_id}",
                information="ResourceUnitLimitExceeded",
            )
        if not self.enabled:
            return Verdict()
        now = time.monotonic()
        scale = self.time_scale
        checks: list[tuple[Bucket, float, str, str]] = [
            (
                self._bucket(("global", app_id), *GLOBAL_REQUESTS),
                1,
                f"Application/Global/{app_id}",
                "GlobalRequestLimitExceeded",
            ),
            (
                self._bucket(("app", app_id), *APP_ALL_TENANTS_RU),
                units,
                f"Application/ReadWrite/{app_id}",
                "ResourceUnitLimitExceeded",
            ),
            (
                self._bucket(("ru", tenant_id, app_id), RU_QUOTA.get(tenant_size, RU_QUOTA["S"]), RU_WINDOW),
                units,
                f"Tenant_Application/ReadWrite/{app_id}/{tenant_id}",
                "ResourceUnitLimitExceeded",
            ),
        ]
        if is_write:
            checks.append(
                (
                    self._bucket(("writes", tenant_id, app_id), *APP_WRITES),
                    1,
                    f"Tenant_Application/Write/{app_id}/{tenant_id}",
                    "WriteLimitExceeded",
                )
            )
            checks.append(
                (
                    self._bucket(("tenant-writes", tenant_id), *TENANT_WRITES),
                    1,
                    f"Tenant/Write/{tenant_id}",
                    "WriteLimitExceeded",
                )
            )
        worst: tuple[float, str, str] | None = None
        for bucket, cost, scope, info in checks:
            bucket.refill(now, scale)
            wait = bucket.wait_for(cost, scale)
            if wait > 0 and (worst is None or wait > worst[0]):
                worst = (wait, scope, info)
        if worst is not None:
            return Verdict(retry_after=max(1, math.ceil(worst[0])), scope=worst[1], information=worst[2])
        for bucket, cost, _scope, _info in checks:
            bucket.level -= cost
        ru_bucket = checks[2][0]
        used = ru_bucket.used_fraction()
        return Verdict(limit_percentage=round(used, 2) if used > WARN_FRACTION else None)
