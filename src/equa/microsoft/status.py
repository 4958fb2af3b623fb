"""An organization's Microsoft 365 status and health, served from a short cache so Graph never makes it wait.

The group summary (name, description, member count) and the health derived from reading it are kept per
(tenant, group) for `settings.status_cache_seconds`. One read in the last quarter of that lifetime refreshes it in
the background, so a page that is being looked at never waits; an expired entry is refreshed too, and the caller
waits for the refresh at most `wait_seconds` and otherwise gets the previous summary marked `stale` with its age.
The cache lives in process memory: it only saves Graph calls, so losing it (restart, another process) costs one
refresh, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from equa.db.base import utcnow
from equa.db.read_cache import ReadCache, detached_copy, read_through
from equa.db.session import release_connection
from equa.errors import AppError
from equa.microsoft import history_repository
from equa.microsoft.graph import (
    GraphAuthenticationFailed,
    GraphClient,
    GraphError,
    GraphNotFound,
    GraphPermissionDenied,
)
from equa.microsoft.groups import linked_group_id, member_count, recently_linked, tolerating_replication_lag
from equa.microsoft.models import SyncRun
from equa.microsoft.scope import GroupScope
from equa.organizations.models import Organization
from equa.settings import Settings

log = logging.getLogger("equa.microsoft.status")

DEFAULT_WAIT_SECONDS = 1.5
# Past this share of its lifetime, a snapshot that is read starts its own background refresh.
REFRESH_AHEAD_FRACTION = 0.75

OK = "ok"
GROUP_MISSING = "group_missing"
PERMISSION_MISSING = "permission_missing"
AUTH_FAILED = "auth_failed"
UNREACHABLE = "unreachable"
OUT_OF_SCOPE = "out_of_scope"  # the linked group is no longer within MS_GROUP_SCOPE; nothing is read from it
REPLICATING = "Microsoft 365 is still replicating the new group; its summary appears within a minute."


@dataclass(frozen=True)
class GroupSnapshot:
    """What Graph said about a group (or, with no group, about the app's access) at one moment."""

    health: str
    action: str | None
    display_name: str | None
    description: str | None
    member_count: int | None
    checked_at: datetime
    checked_monotonic: float

    def age(self, now: float) -> float:
        """Seconds since the check, by the clock that stamped it (`now` is that clock's reading)."""
        return max(0.0, now - self.checked_monotonic)


def _health_of(error: GraphError, consent_url: str | None) -> tuple[str, str]:
    if isinstance(error, GraphNotFound):
        return GROUP_MISSING, (
            "The linked group was deleted in Microsoft 365. Open the group details to clear the link, then link "
            "another group or create one."
        )
    if isinstance(error, GraphPermissionDenied):
        action = error.action or "A tenant administrator must grant the app its Microsoft Graph permissions."
        if consent_url and consent_url not in action:
            action = f"{action} Admin consent: {consent_url}"
        return PERMISSION_MISSING, action
    if isinstance(error, GraphAuthenticationFailed):
        return AUTH_FAILED, error.action or "Check the MS_AUTH_* settings of the service."
    return UNREACHABLE, error.action or "Microsoft 365 could not be reached; it is retried automatically."


async def read_snapshot(
    graph: GraphClient,
    group_id: str | None,
    consent_url: str | None,
    *,
    recent: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> GroupSnapshot:
    """Ask Graph now. With no group, a one-item group listing proves sign-in and permissions.

    `recent`: the group was linked (or created) moments ago, so a 404 is Graph still replicating it, not a
    deletion; it is retried for a few seconds and otherwise reported as such.
    """
    try:
        if group_id is None:
            await graph.get("groups", params={"$top": "1", "$select": "id"})
            display_name = description = None
            count: int | None = None
        else:
            response = await tolerating_replication_lag(
                lambda: graph.get(f"groups/{group_id}", params={"$select": "id,displayName,description"}),
                recent=recent,
            )
            body: dict[str, Any] = response.json() or {}
            display_name, description = body.get("displayName"), body.get("description")
            count = await member_count(graph, group_id)
        health, action = OK, None
    except GraphError as error:
        health, action = _health_of(error, consent_url)
        if recent and isinstance(error, GraphNotFound):
            health, action = UNREACHABLE, REPLICATING  # not a deletion: Graph has not replicated it yet
        display_name = description = None
        count = None
    except (
        Exception
    ) as error:  # a background refresh must never die silently (e.g. client closed at shut-down)
        log.warning("status refresh failed: %s", type(error).__name__)
        health, action = UNREACHABLE, "Microsoft 365 could not be reached; it is retried automatically."
        display_name = description = None
        count = None
    return GroupSnapshot(health, action, display_name, description, count, utcnow(), clock())


class StatusCache:
    """Group snapshots per (tenant, group), each refreshed by at most one task at a time."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        # Ages are read from this clock only: a test passes its own and moves it instead of sleeping.
        self.clock = clock
        self._entries: dict[tuple[str, str | None], GroupSnapshot] = {}
        self._refreshing: dict[tuple[str, str | None], asyncio.Task[GroupSnapshot]] = {}

    def _refresh(
        self, graph: GraphClient, group_id: str | None, consent_url: str | None, recent: bool = False
    ) -> asyncio.Task[GroupSnapshot]:
        key = (graph.tenant, group_id)
        task = self._refreshing.get(key)
        if task is None or task.done():

            async def refresh() -> GroupSnapshot:
                try:
                    snapshot = await read_snapshot(
                        graph, group_id, consent_url, recent=recent, clock=self.clock
                    )
                    previous = self._entries.get(key)
                    if snapshot.action == REPLICATING and previous is not None and previous.health == OK:
                        return previous  # what we created and read before is better than "not there yet"
                    self._entries[key] = snapshot
                    return snapshot
                finally:
                    self._refreshing.pop(key, None)

            task = asyncio.create_task(refresh(), name=f"microsoft-status-{group_id}")
            self._refreshing[key] = task
        return task

    def remember_created(self, graph: GraphClient, group: dict[str, Any]) -> None:
        """The group this process just created, as Graph answered the creation: shown until Graph replicates it.

        Due for a refresh at once (the next read starts one in the background); a refresh that still finds no
        group keeps this summary instead of replacing it with "still replicating".
        """
        key = (graph.tenant, str(group["id"]))
        age = self.ttl_seconds * REFRESH_AHEAD_FRACTION
        self._entries[key] = GroupSnapshot(
            OK,
            None,
            group.get("displayName"),
            group.get("description"),
            0,  # a new group has its owner, and no member yet
            utcnow(),
            self.clock() - age,
        )

    def is_fresh(self, graph: GraphClient, group_id: str | None) -> bool:
        cached = self._entries.get((graph.tenant, group_id))
        return cached is not None and self.age(cached) < self.ttl_seconds

    def age(self, snapshot: GroupSnapshot) -> float:
        """Seconds since Graph was asked for this snapshot."""
        return snapshot.age(self.clock())

    def forget(self, graph: GraphClient, group_id: str | None) -> None:
        """Drop a group's snapshot (after link, unlink or a detected deletion) so the next status is fresh."""
        self._entries.pop((graph.tenant, group_id), None)

    def expire(self, graph: GraphClient, group_id: str | None) -> None:
        """Mark a group's snapshot out of date (its members changed) but keep it as the fallback if Graph is slow."""
        key = (graph.tenant, group_id)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries[key] = replace(
                cached, checked_monotonic=cached.checked_monotonic - self.ttl_seconds - 1
            )

    async def snapshot(
        self,
        graph: GraphClient,
        group_id: str | None,
        consent_url: str | None,
        wait_seconds: float,
        *,
        recent: bool = False,
    ) -> tuple[GroupSnapshot | None, bool]:
        """(snapshot, fresh): a cached or newly read one, or after `wait_seconds` the last one (stale, maybe None)."""
        key = (graph.tenant, group_id)
        cached = self._entries.get(key)
        if cached is not None and self.age(cached) < self.ttl_seconds:
            if self.age(cached) >= self.ttl_seconds * REFRESH_AHEAD_FRACTION:
                # Refresh before expiry, in the background: while the group is looked at, no caller ever waits.
                self._refresh(graph, group_id, consent_url, recent)
            return cached, True
        task = self._refresh(graph, group_id, consent_url, recent)
        try:
            # shield: a caller that stops waiting must not cancel the refresh others will use.
            return await asyncio.wait_for(asyncio.shield(task), timeout=wait_seconds), True
        except TimeoutError:
            return self._entries.get(key), False

    async def aclose(self) -> None:
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class Status:
    enabled: bool
    linked: bool
    group_id: str | None
    group: GroupSnapshot | None
    last_sync: SyncRun | None
    health: str
    action: str | None
    admin_consent_url: str | None
    stale: bool
    age_seconds: float | None
    checked_at: datetime | None
    # `last_sync` is the last real sync; previews (dry runs) change nothing in the group and are shown apart.
    last_preview: SyncRun | None = None


async def last_sync_run(
    session: AsyncSession,
    organization: Organization,
    read_cache: ReadCache | None = None,
    *,
    preview: bool = False,
) -> SyncRun | None:
    """The last real sync of the linked group, or with `preview` its last dry run (None when nothing is linked).

    Runs belong to the group they ran against: after a new link, the old group's stay in the run list only.
    """
    group_id = linked_group_id(organization)
    if group_id is None:
        return None

    async def load() -> SyncRun | None:
        return await history_repository.last_run(session, organization.id, dry_run=preview, group_id=group_id)

    async def attach(copy: SyncRun | None) -> SyncRun | None:
        return None if copy is None else await session.merge(copy, load=False)

    return await read_through(
        read_cache,
        ("last_preview_run" if preview else "last_sync_run", organization.id, group_id),
        (SyncRun.__tablename__,),
        load,
        detached_copy,
        attach,
        cache_none=True,
    )


async def get_status(
    session: AsyncSession,
    graph: GraphClient | None,
    cache: StatusCache | None,
    organization: Organization,
    settings: Settings,
    read_cache: ReadCache | None = None,
    *,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> Status:
    """The organization's integration status; waits for Graph at most `wait_seconds`."""
    # Read before Graph is waited on (which gives the session's connection back).
    preview = await last_sync_run(session, organization, read_cache, preview=True)
    status = await _status(
        session, graph, cache, organization, settings, read_cache, wait_seconds=wait_seconds
    )
    return replace(status, last_preview=preview)


async def _status(
    session: AsyncSession,
    graph: GraphClient | None,
    cache: StatusCache | None,
    organization: Organization,
    settings: Settings,
    read_cache: ReadCache | None = None,
    *,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> Status:
    group_id = linked_group_id(organization)
    consent_url = settings.admin_consent_url()
    last = await last_sync_run(session, organization, read_cache)
    if graph is None or not settings.ms_auth_enabled:
        return Status(
            False,
            group_id is not None,
            group_id,
            None,
            last,
            UNREACHABLE,
            "The Microsoft 365 integration is turned off (MS_AUTH_ENABLED).",
            consent_url,
            False,
            None,
            None,
        )
    if group_id is not None:
        try:
            await GroupScope.from_settings(settings).check(session, graph, organization.id, group_id)
        except AppError as refused:
            return Status(
                True, True, group_id, None, last, OUT_OF_SCOPE, refused.action, consent_url, False, None, None
            )
        except GraphError:
            pass  # the unit could not be read now; the snapshot below reports Graph's health
    cache = cache or StatusCache(settings.status_cache_seconds)
    if not cache.is_fresh(graph, group_id):
        await release_connection(session)  # about to wait on Graph: let other requests have the connection
    recent = recently_linked(organization)
    snapshot, fresh = await cache.snapshot(graph, group_id, consent_url, wait_seconds, recent=recent)
    if snapshot is None:
        return Status(
            True,
            group_id is not None,
            group_id,
            None,
            last,
            UNREACHABLE,
            "Microsoft 365 is answering slowly; the group summary will appear shortly.",
            consent_url,
            True,
            None,
            None,
        )
    age = cache.age(snapshot)
    return Status(
        enabled=True,
        linked=group_id is not None,
        group_id=group_id,
        group=snapshot if group_id is not None and snapshot.health == OK else None,
        last_sync=last,
        health=snapshot.health,
        action=snapshot.action,
        admin_consent_url=consent_url,
        stale=not fresh,
        age_seconds=round(age, 3),
        checked_at=snapshot.checked_at,
    )
