"""Deleted, or not replicated yet? What Microsoft 365's deleted items say about a group that answers 404.

A deleted Microsoft 365 (Unified) group stays 30 days in deleted items (`GET /directory/deletedItems/{id}`, with
its `deletedDateTime`), and can be restored from there; a security group is deleted for good at once. So a 404 for
the linked group means, in order:

- the group is among deleted items: it was deleted (restorable for 30 days), whatever the replication window says;
- it is not, and the group was linked moments ago: Graph has not replicated it yet (as before);
- it is not, and the link is older: the group is gone for good.

Reading deleted items takes Group.Read.All, which the service holds anyway; an app without it (or any answer that
is not the group) counts as "not among deleted items", and the age of the link decides alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from equa.microsoft.graph import GraphClient, GraphNotFound, GraphPermissionDenied

log = logging.getLogger("equa.microsoft.groups")

DELETED_FIELDS = "id,displayName,groupTypes,deletedDateTime"
RETENTION_DAYS = 30


@dataclass(frozen=True)
class DeletedGroup:
    """A group found among deleted items; its name is Microsoft's untrusted text."""

    id: str
    display_name: str | None
    unified: bool
    deleted_at: datetime | None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def deleted_group_of(body: dict[str, Any], group_id: str) -> DeletedGroup | None:
    """The deleted group in a deletedItems answer; None when the answer is not that group."""
    if str(body.get("id", "")).lower() != group_id.lower():
        return None
    name = body.get("displayName")
    return DeletedGroup(
        id=group_id,
        display_name=name[:256] if isinstance(name, str) else None,
        unified="Unified" in (body.get("groupTypes") or []),
        deleted_at=_parse_time(body.get("deletedDateTime")),
    )


async def find_deleted_group(graph: GraphClient, group_id: str) -> DeletedGroup | None:
    """The group if Microsoft 365 keeps it among deleted items; None if it does not (or the app may not look)."""
    try:
        response = await graph.get(f"directory/deletedItems/{group_id}", params={"$select": DELETED_FIELDS})
    except GraphNotFound:
        return None
    except GraphPermissionDenied as denied:
        log.warning(
            "deleted items could not be read (%s); a missing group is judged by its link's age", denied.code
        )
        return None
    body = response.json()
    return deleted_group_of(body, group_id) if isinstance(body, dict) else None


def deletion_time_text(deleted: DeletedGroup | None) -> str | None:
    """The deletion time as the API shows it (ISO 8601, UTC, seconds)."""
    if deleted is None or deleted.deleted_at is None:
        return None
    return deleted.deleted_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
