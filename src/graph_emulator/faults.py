"""Injected faults: latency, random 429/503/504, dropped connections, lost answers, replication lag, token outages.

`drop_rate` closes the connection before the request is looked at (nothing happened); `lost_response_rate` does the
work first and then closes the connection (the change was made, the caller never hears so): the case a client must
survive without duplicating what it asked for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_429: float = 0.0
    rate_503: float = 0.0
    rate_504: float = 0.0
    retry_after_seconds: int = 1
    retry_after_on_503: bool = False
    drop_rate: float = 0.0
    lost_response_rate: float = 0.0
    replication_lag_seconds: float = 0.0
    token_outage: bool | str = False  # True or "503": answer 503; "drop": close the connection
    seed_random: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Faults:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        faults = cls(**data)
        for name in ("rate_429", "rate_503", "rate_504", "drop_rate", "lost_response_rate"):
            value = getattr(faults, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1")
        return faults

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class FaultInjector:
    def __init__(self, faults: Faults | None = None) -> None:
        self.configure(faults or Faults())

    def configure(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed_random)

    def delay_seconds(self) -> float:
        f = self.faults
        if f.latency_ms <= 0 and f.jitter_ms <= 0:
            return 0.0
        return max(0.0, f.latency_ms + self.rng.uniform(0, f.jitter_ms)) / 1000.0

    def should_drop(self) -> bool:
        return self.faults.drop_rate > 0 and self.rng.random() < self.faults.drop_rate

    def should_lose_response(self) -> bool:
        rate = self.faults.lost_response_rate
        return rate > 0 and self.rng.random() < rate

    def pick_status(self) -> int | None:
        """An injected failure status for this Graph request or $batch item, if one is due."""
        f = self.faults
        if f.rate_429 <= 0 and f.rate_503 <= 0 and f.rate_504 <= 0:
            return None
        roll = self.rng.random()
        if roll < f.rate_429:
            return 429
        if roll < f.rate_429 + f.rate_503:
            return 503
        if roll < f.rate_429 + f.rate_503 + f.rate_504:
            return 504
        return None

    def token_outage(self) -> str | None:
        outage = self.faults.token_outage
        if not outage:
            return None
        return "drop" if outage == "drop" else "503"


class DroppedResponse:
    """An ASGI 'response' that closes the TCP connection without answering (the drop_rate fault)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw_send = scope.get("emulator.raw_send")
        cycle: Any = getattr(raw_send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise ConnectionAbortedError("injected connection drop")
        # Mark the cycle disconnected first so the server does not try to write a 500 afterwards.
        if hasattr(cycle, "disconnected"):
            cycle.disconnected = True
        transport.close()
