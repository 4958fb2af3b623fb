"""An organization's sync settings: automatic sync on a schedule, and removal of members who left the team."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from equa.microsoft.audit import record_audit
from equa.organizations.models import Organization


@dataclass(frozen=True)
class SyncSettings:
    auto_sync: bool
    remove_departed: bool


def get_sync_settings(organization: Organization) -> SyncSettings:
    return SyncSettings(
        auto_sync=organization.microsoft_auto_sync, remove_departed=organization.microsoft_remove_departed
    )


async def update_sync_settings(
    session: AsyncSession,
    organization: Organization,
    actor_id: uuid.UUID | None,
    *,
    auto_sync: bool | None = None,
    remove_departed: bool | None = None,
) -> SyncSettings:
    """Change what is given (None leaves a setting as it is); each change is on the audit trail."""
    changes: list[str] = []
    if auto_sync is not None and auto_sync != organization.microsoft_auto_sync:
        organization.microsoft_auto_sync = auto_sync
        changes.append(f"autoSync={str(auto_sync).lower()}")
    if remove_departed is not None and remove_departed != organization.microsoft_remove_departed:
        organization.microsoft_remove_departed = remove_departed
        changes.append(f"removeDeparted={str(remove_departed).lower()}")
    if changes:
        record_audit(
            session,
            organization_id=organization.id,
            actor_id=actor_id,
            action="sync.settings",
            target=None,
            detail=", ".join(changes),
        )
        await session.flush()
    return get_sync_settings(organization)
