"""Delta tokens' lifetime: Microsoft keeps the sync state of identity resources for 7 days, then answers
`syncStateNotFound` and the client must synchronise in full again. `/_emulator/delta/expire` ends them early."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Microsoft's lifetime of delta links for identity and access resources (since July 2020).
DELTA_LINK_LIFETIME_SECONDS = 7 * 24 * 3600
SYNC_STATE_NOT_FOUND = "syncStateNotFound"
EXPIRED_MESSAGE = (
    "The sync state generation is not found. The delta token is expired and data must be synchronized again."
)
EXPIRED_STATUSES = (400, 410)


@dataclass
class DeltaTokens:
    """Serial numbers of issued delta and skip tokens, and per tenant the serial up to which they are expired."""

    serial: int = 0
    floors: dict[str, tuple[int, int]] = field(default_factory=dict)  # tenant id -> (serial floor, status)
    lifetime_seconds: float = DELTA_LINK_LIFETIME_SECONDS
    expired_answers: int = 0

    def reset(self) -> None:
        self.floors.clear()
        self.lifetime_seconds = DELTA_LINK_LIFETIME_SECONDS
        self.expired_answers = 0

    def stamp(self, tenant_id: str) -> dict[str, Any]:
        """What a new token carries: its serial, when it was issued and for which tenant."""
        self.serial += 1
        return {"g": self.serial, "t": int(time.time()), "tn": tenant_id}

    def expire(self, tenant_ids: list[str], status: int = 400) -> int:
        """Every token issued so far for these tenants answers `status` from now on; returns the serial floor."""
        if status not in EXPIRED_STATUSES:
            raise ValueError(f"status must be one of {', '.join(map(str, EXPIRED_STATUSES))}")
        for tenant_id in tenant_ids:
            self.floors[tenant_id] = (self.serial, status)
        return self.serial

    def expired_status(self, tenant_id: str, state: dict[str, Any]) -> int | None:
        """None while the token is good; else the HTTP status its use answers."""
        if state.get("tn", tenant_id) != tenant_id:
            return 400  # a token of another tenant
        floor, status = self.floors.get(tenant_id, (-1, 400))
        if int(state.get("g", 0)) <= floor:
            return status
        if time.time() - int(state.get("t", time.time())) > self.lifetime_seconds:
            return 400
        return None
