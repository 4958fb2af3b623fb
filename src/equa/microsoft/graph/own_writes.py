"""Read-your-own-writes over Graph's replication lag, for the member changes an admin makes through Equa.

Microsoft Graph is eventually consistent: a member this process has just added can be missing from the next
member listing and `$count` for a few seconds (rarely minutes), and a removed one can still be listed. So the
service remembers the member changes it made in the last `WINDOW_SECONDS` and lays them over what Graph answers,
until Graph shows them or the window passes.

Each GraphClient holds its own (process memory, like the status cache): another process shows Graph's own view,
which catches up by itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# As long as groups.REPLICATION_WINDOW: past it, Graph's answer is taken as it is.
WINDOW_SECONDS = 120.0
MAX_GROUPS = 1000  # a bound on memory: the oldest group's overlay goes first


@dataclass
class _Change:
    present: bool  # the member is in the group after our change
    was_present: bool  # ... and was before our first change within the window
    member: dict[str, Any] | None  # the Graph user, to list it before Graph does
    at: float


@dataclass
class _Group:
    changes: dict[str, _Change]
    count_before: int | None  # Graph's member count when our first change was made, if we had read it


class OwnWrites:
    def __init__(self, window_seconds: float = WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._groups: dict[tuple[str, str], _Group] = {}
        self._counts: dict[tuple[str, str], int] = {}  # the last member count Graph gave for a group

    def clear(self) -> None:
        self._groups.clear()
        self._counts.clear()

    def _live(self, key: tuple[str, str]) -> _Group | None:
        group = self._groups.get(key)
        if group is None:
            return None
        horizon = time.monotonic() - self.window_seconds
        # Changes are kept oldest first, so expiry only ever looks at the front (a large sync stays linear).
        while group.changes:
            oldest = next(iter(group.changes))
            if group.changes[oldest].at >= horizon:
                break
            del group.changes[oldest]
        if not group.changes:
            del self._groups[key]
            return None
        return group

    def changed(
        self,
        tenant: str,
        group_id: str,
        member_id: str,
        *,
        present: bool,
        member: dict[str, Any] | None = None,
    ) -> None:
        """Record that this process added (present=True) or removed a member, Graph having said it did."""
        key = (tenant, group_id)
        group = self._live(key)
        if group is None:
            if len(self._groups) >= MAX_GROUPS:
                self._groups.pop(next(iter(self._groups)))
            group = self._groups[key] = _Group({}, self._counts.get(key))
        earlier = group.changes.pop(member_id, None)
        was_present = earlier.was_present if earlier is not None else not present
        group.changes[member_id] = _Change(present, was_present, member, time.monotonic())

    def members_page(
        self, tenant: str, group_id: str, items: list[dict[str, Any]], *, last_page: bool
    ) -> list[dict[str, Any]]:
        """A page of Graph's member listing with our recent changes applied."""
        group = self._live((tenant, group_id))
        if group is None:
            return items
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for item in items:
            member_id = str(item.get("id"))
            seen.add(member_id)
            change = group.changes.get(member_id)
            if change is not None and not change.present:
                continue  # we removed it; Graph has not caught up
            if change is not None and change.present and not change.was_present:
                del group.changes[member_id]  # Graph lists our addition now
            out.append(item)
        if last_page:
            for member_id, change in group.changes.items():
                if change.present and not change.was_present and member_id not in seen and change.member:
                    out.append(change.member)
        return out

    def pending(self, tenant: str, group_id: str) -> tuple[set[str], dict[str, dict[str, Any]]]:
        """(ids we removed, members we added) in the window, for a full listing that Graph may not show yet."""
        group = self._live((tenant, group_id))
        if group is None:
            return set(), {}
        removed = {member_id for member_id, c in group.changes.items() if not c.present and c.was_present}
        added = {
            member_id: c.member
            for member_id, c in group.changes.items()
            if c.present and not c.was_present and c.member is not None
        }
        return removed, added

    def member_count(self, tenant: str, group_id: str, count: int) -> int:
        """Graph's member count, or what it will be once our recent changes replicate while it still lags."""
        key = (tenant, group_id)
        group = self._live(key)
        if group is None or group.count_before is None:
            self._counts[key] = count
            return count
        if count != group.count_before:
            # Graph's count moved since our first change: it has caught up (or others changed the group too).
            group.count_before = None
            self._counts[key] = count
            return count
        delta = sum(int(c.present) - int(c.was_present) for c in group.changes.values())
        return max(0, count + delta)
