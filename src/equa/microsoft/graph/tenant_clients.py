"""TenantClients: one Graph client per tenant for a multi-tenant app, the idle ones dropped (least recently used).

Each tenant's client has its own MSAL app (authority {host}/{tenant}), token cache, single-flight lock and read-your-
own-writes memory; all of them share the process's HTTP pool, throttle gate and pacer, whose keys already name the
tenant. A client unused for `idle_seconds` is dropped at the next lookup, and at most `max_clients` are kept, so
memory stays flat with thousands of connected tenants; a dropped tenant signs in again on its next call.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from equa.microsoft.graph.client import GraphClient

DEFAULT_MAX_CLIENTS = 1000
DEFAULT_IDLE_SECONDS = 3600.0


@dataclass
class _Entry:
    client: GraphClient
    used_at: float


class TenantClients:
    """A bounded LRU + idle-time cache of per-tenant Graph clients, built on demand by `build(tenant_id)`."""

    def __init__(
        self,
        build: Callable[[str], GraphClient],
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.max_clients = max_clients
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.built = 0  # clients built so far (a dropped tenant used again counts again)
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tenant_id: object) -> bool:
        return isinstance(tenant_id, str) and tenant_id.lower() in self._entries

    def get(self, tenant_id: str) -> GraphClient:
        """The tenant's client, built on first use; marks it used now."""
        key = tenant_id.lower()
        now = self.clock()
        self._drop_idle(now)
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(self._build(key), now)
            self._entries[key] = entry
            self.built += 1
            while len(self._entries) > self.max_clients:
                _, oldest = self._entries.popitem(last=False)
                self._forget(oldest)
        else:
            entry.used_at = now
            self._entries.move_to_end(key)
        return entry.client

    def forget(self, tenant_id: str) -> None:
        """Drop one tenant's client (a disconnected tenant): its tokens go with it."""
        entry = self._entries.pop(tenant_id.lower(), None)
        if entry is not None:
            self._forget(entry)

    def close(self) -> None:
        while self._entries:
            _, entry = self._entries.popitem(last=False)
            self._forget(entry)

    def _drop_idle(self, now: float) -> None:
        limit = now - self.idle_seconds
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.used_at > limit:
                return
            del self._entries[key]
            self._forget(entry)

    def _forget(self, entry: _Entry) -> None:
        # Only the tenant's own token provider is closed: the HTTP pool, gate and pacer are shared.
        entry.client.tokens.close()
        self.dropped += 1
