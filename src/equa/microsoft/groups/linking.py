"""Linking an organization to an existing group, unlinking it, and the checks every use of the link goes through.

Each function takes the request's session (it only adds and flushes; the caller commits once). When Graph says the
linked group no longer exists, the link is cleared and `GroupMissing` raised; the clearing is in the caller's
session, and callers must commit it even though an error is returned (the routes do so by rendering GroupMissing
as a response instead of letting it roll the request back).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.microsoft import repository
from equa.microsoft.audit import record_audit
from equa.microsoft.graph import GraphClient, GraphNotFound, GraphTransient, while_replicating
from equa.microsoft.groups.deleted import deletion_time_text, find_deleted_group
from equa.microsoft.groups.problems import (
    GroupMissing,
    LinkRefusal,
    already_linked_to_other,
    group_not_found,
    linked_elsewhere,
    not_linked,
    refusal_error,
)
from equa.microsoft.scope import GroupScope
from equa.organizations.models import Organization

log = logging.getLogger("equa.microsoft.groups")

T = TypeVar("T")

GROUP_FIELDS = (
    "id,displayName,description,mail,mailNickname,visibility,groupTypes,mailEnabled,securityEnabled,"
    "onPremisesSyncEnabled,isAssignableToRole,createdDateTime,membershipRule"
)
# Graph may answer 404 for a group (or refuse references to it) for a short while after creating it.
REPLICATION_WINDOW = timedelta(minutes=2)
REPLICATION_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


def linkability(group: dict[str, Any]) -> LinkRefusal | None:
    """Why Equa cannot manage this group's membership (None: it can). `group` is a Graph group resource."""
    group_types = group.get("groupTypes") or []
    unified = "Unified" in group_types
    if "DynamicMembership" in group_types or group.get("membershipRule"):
        return LinkRefusal(
            "dynamic_membership",
            "Its membership is set by a rule (dynamic group), so members cannot be added or removed.",
            "Link a group with assigned membership, or change the rule in Microsoft Entra.",
        )
    if group.get("onPremisesSyncEnabled"):
        return LinkRefusal(
            "synced_from_on_premises",
            "It is synced from on-premises Active Directory; Microsoft Graph cannot change its members.",
            "Manage it in Active Directory, or link or create a cloud Microsoft 365 group.",
        )
    if group.get("mailEnabled") and not unified:
        if group.get("securityEnabled"):
            return LinkRefusal(
                "mail_enabled_security",
                "It is a mail-enabled security group; Microsoft Graph cannot change its members.",
                "Manage it in Exchange, or link or create a Microsoft 365 group.",
            )
        return LinkRefusal(
            "distribution_list",
            "It is a distribution list; Microsoft Graph cannot change its members.",
            "Manage it in Exchange, or link or create a Microsoft 365 group.",
        )
    if group.get("visibility") == "HiddenMembership":
        return LinkRefusal(
            "hidden_membership",
            "Its membership is hidden: only its owners and members may see who is in it, and listing or "
            "changing its members here would show them to the organization's admins.",
            "Link or create a group whose membership is not hidden.",
        )
    if group.get("isAssignableToRole"):
        return LinkRefusal(
            "role_assignable",
            "It can be assigned directory roles: whoever manages its members would grant admin roles.",
            "Link or create a group that is not role-assignable.",
        )
    return None


def linked_group_id(organization: Organization) -> str | None:
    """The linked group's object id as Graph writes it, or None."""
    return str(organization.microsoft_group) if organization.microsoft_group else None


def require_linked(organization: Organization) -> str:
    group_id = linked_group_id(organization)
    if group_id is None:
        raise not_linked()
    return group_id


def recently_linked(organization: Organization) -> bool:
    linked_at = organization.microsoft_group_linked_at
    return linked_at is not None and utcnow() - linked_at < REPLICATION_WINDOW


async def tolerating_replication_lag(call: Callable[[], Awaitable[T]], *, recent: bool) -> T:
    """Run `call`; when the group is new, retry a GraphNotFound a few times (bounded) while Graph replicates it."""
    return await while_replicating(call, REPLICATION_RETRY_DELAYS if recent else ())


async def fetch_group(graph: GraphClient, group_id: str) -> dict[str, Any]:
    response = await graph.get(f"groups/{group_id}", params={"$select": GROUP_FIELDS})
    body: dict[str, Any] = response.json() or {}
    return body


async def clear_stale_link(
    session: AsyncSession,
    organization: Organization,
    *,
    actor_id: uuid.UUID | None,
    request_id: str | None,
    found_by: str,
    deleted_at: str | None = None,
) -> str | None:
    """Forget a linked group that Graph says is gone (spec risk table); returns the group id that was cleared."""
    group_id = linked_group_id(organization)
    if group_id is None:
        return None
    repository.clear_link(organization)
    await repository.forget_group_state(session, organization.id)
    where = f" It is among deleted items since {deleted_at}." if deleted_at else ""
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor_id,
        action="group.missing",
        target=group_id,
        detail=f"Microsoft Graph answered 404 for the linked group ({found_by}); the link was cleared.{where}",
        request_id=request_id,
    )
    await session.flush()
    log.warning("organization %s: linked group %s no longer exists; link cleared", organization.id, group_id)
    return group_id


async def require_linked_in_scope(
    session: AsyncSession, graph: GraphClient, organization: Organization, scope: GroupScope
) -> str:
    """The linked group's id, once MS_GROUP_SCOPE says the organization may still reach it.

    A linked group can leave the scope after it was linked (removed from the administrative unit, the scope
    narrowed by the operator): every Graph call on it asks again, and the admin gets the 403 and its action.
    """
    group_id = require_linked(organization)
    await scope.check(session, graph, organization.id, group_id)
    return group_id


async def linked_group(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User | None,
    found_by: str,
    *,
    scope: GroupScope | None,
) -> dict[str, Any]:
    """The linked group from Graph; GroupMissing (after clearing the link) when Graph no longer has it.

    `scope` None only where the caller has just checked it.
    """
    group_id = (
        require_linked(organization)
        if scope is None
        else await require_linked_in_scope(session, graph, organization, scope)
    )
    try:
        return await fetch_group(graph, group_id)
    except GraphNotFound as error:
        missing = await group_gone(
            session,
            graph,
            organization,
            actor_id=actor.id if actor else None,
            request_id=error.request_id,
            found_by=found_by,
        )
        if missing is not None:
            raise missing from None
    try:
        return await tolerating_replication_lag(lambda: fetch_group(graph, group_id), recent=True)
    except GraphNotFound as error:
        # Still inside the replication window and not among deleted items: not evidence of a deletion yet.
        raise GraphTransient(
            "The new group is not visible in Microsoft 365 yet.",
            code="replication_lag",
            request_id=error.request_id,
            action="Microsoft 365 is still replicating the new group; try again in a minute.",
        ) from None


async def group_gone(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    *,
    actor_id: uuid.UUID | None,
    request_id: str | None,
    found_by: str,
) -> GroupMissing | None:
    """After Graph answered 404 for the linked group: the GroupMissing to raise, the link cleared, when the group
    is among deleted items or was linked too long ago for replication to explain it; None while a new group may
    still be replicating (groups/deleted.py)."""
    group_id = require_linked(organization)
    deleted = await find_deleted_group(graph, group_id)
    if deleted is None and recently_linked(organization):
        return None
    deleted_at = deletion_time_text(deleted)
    await clear_stale_link(
        session,
        organization,
        actor_id=actor_id,
        request_id=request_id,
        found_by=found_by,
        deleted_at=deleted_at,
    )
    return GroupMissing(
        group_id,
        deleted=deleted is not None,
        deleted_at=deleted_at,
        restorable=deleted is not None and deleted.unified,
    )


async def flush_link(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # Another organization linked the same group between our check and this write (unique index).
        raise linked_elsewhere() from None


@dataclass(frozen=True)
class LinkResult:
    group: dict[str, Any]
    changed: bool


async def link_group(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    group_id: uuid.UUID,
    *,
    scope: GroupScope,
) -> LinkResult:
    """Link an existing group to `organization`.

    Raises AppError: 403 microsoft_group_out_of_scope when MS_GROUP_SCOPE does not reach the group (checked
    before Graph is asked about it); 409 when this organization is linked to another group (unlink first) or the
    group serves another organization; 404 when the tenant has no such group; 422 (code
    microsoft_group_unlinkable, extra `reason`) for groups whose membership Equa cannot manage. Linking the same
    group again changes nothing.
    """
    current = linked_group_id(organization)
    if current is not None and current != str(group_id):
        raise already_linked_to_other(current)
    await scope.check(session, graph, organization.id, group_id)
    if await repository.organization_linked_to(session, group_id, organization.id) is not None:
        raise linked_elsewhere()
    try:
        group = await fetch_group(graph, str(group_id))
    except GraphNotFound as error:
        raise group_not_found(group_id, error.request_id) from None
    if current is not None:
        return LinkResult(group, changed=False)
    refusal = linkability(group)
    if refusal is not None:
        raise refusal_error(refusal)
    repository.set_link(organization, group_id, actor.id)
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action="group.link",
        target=str(group_id),
        detail=f"Linked {group.get('displayName')!r}.",
    )
    await flush_link(session)
    return LinkResult(group, changed=True)


async def unlink_group(
    session: AsyncSession,
    organization: Organization,
    actor: User,
    *,
    detail: str = "Unlinked; the group was left in Microsoft 365.",
) -> str:
    """Clear the link (the group stays in Microsoft 365, spec section 6). Returns the group id that was linked.

    Every unlink goes through here (the admin's, and a tenant disconnected or changed), so each forgets the same
    state; `detail` says why in the audit trail."""
    group_id = require_linked(organization)
    repository.clear_link(organization)
    # Who the sync linked and added, flagged or was told about belongs to that group: the next one starts fresh.
    await repository.forget_group_state(session, organization.id)
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action="group.unlink",
        target=group_id,
        detail=detail,
    )
    await session.flush()
    return group_id
