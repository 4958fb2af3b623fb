"""Restoring the organization's deleted group from Microsoft 365's deleted items, and linking it again.

The group restored is the last one the organization had linked (the link a deletion cleared, or the one it
unlinked): found in its audit trail. Only a Microsoft 365 (Unified) group can be restored, within 30 days of its
deletion; a security group is deleted for good at once. Restoring takes the Group.ReadWrite.All application
permission (optional: without it, Graph's 403 becomes microsoft_permission_missing naming it).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.microsoft import history_repository, repository
from equa.microsoft.audit import record_audit
from equa.microsoft.graph import GraphClient
from equa.microsoft.groups.deleted import find_deleted_group
from equa.microsoft.groups.linking import flush_link, linkability, linked_group, linked_group_id
from equa.microsoft.groups.problems import (
    GroupMissing,
    linked_elsewhere,
    not_restorable,
    nothing_to_restore,
    refusal_error,
    security_group,
    still_exists,
)
from equa.microsoft.scope import GroupScope
from equa.organizations.models import Organization

log = logging.getLogger("equa.microsoft.groups")

# Audit actions that name the group the organization had linked, newest wins.
LINK_ACTIONS = ("group.link", "group.create", "group.restore", "group.missing", "group.unlink")


async def restore_group(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    *,
    scope: GroupScope,
) -> dict[str, Any]:
    """Restore the organization's last linked group and link it again; returns the group as Graph restored it.

    404 microsoft_nothing_to_restore when it never linked one; 409 microsoft_group_not_deleted while its linked
    group still exists; 409 microsoft_group_not_restorable when the group is gone for good, 422 for a security
    group; and every check of linking (scope, another organization's group, a group Equa cannot manage).
    """
    group_id = linked_group_id(organization)
    if group_id is not None:
        try:
            await linked_group(session, graph, organization, actor, "restoring the group", scope=scope)
        except GroupMissing:
            pass  # the link is cleared now (in this session); restore what it pointed at
        else:
            raise still_exists(group_id)
    else:
        group_id = await history_repository.last_group_of(session, organization.id, LINK_ACTIONS)
        if group_id is None:
            raise nothing_to_restore()
    try:
        group_uuid = uuid.UUID(group_id)
    except ValueError:
        raise nothing_to_restore() from None
    await scope.check(session, graph, organization.id, group_id)
    if await repository.organization_linked_to(session, group_uuid, organization.id) is not None:
        raise linked_elsewhere()
    deleted = await find_deleted_group(graph, group_id)
    if deleted is None:
        raise not_restorable(group_id)
    if not deleted.unified:
        raise security_group(group_id)
    response = await graph.post(f"directory/deletedItems/{group_id}/restore")
    group: dict[str, Any] = response.json() or {}
    group.setdefault("id", group_id)
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action="group.restore",
        target=group_id,
        detail=f"Restored {group.get('displayName')!r} from deleted items.",
        request_id=response.request_id,
    )
    refusal = linkability(group)
    if refusal is not None:
        await session.flush()
        raise refusal_error(refusal)
    repository.set_link(organization, group_uuid, actor.id)
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action="group.link",
        target=group_id,
        detail=f"Linked {group.get('displayName')!r} again after restoring it.",
    )
    await flush_link(session)
    log.info("organization %s: restored group %s and linked it again", organization.id, group_id)
    return group
