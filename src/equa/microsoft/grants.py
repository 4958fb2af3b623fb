"""Operators grant existing tenant groups to organizations (the `granted` scope), and revoke them.

Called by `equa microsoft grant-group / revoke-group / grants` and by /api/v1/microsoft/grants (platform admins
only). Like the other services it only adds and flushes; the caller commits once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.errors import AppError
from equa.microsoft import repository
from equa.microsoft.audit import record_audit
from equa.microsoft.graph import GraphClient, GraphNotFound
from equa.microsoft.groups import fetch_group, linkability, linked_group_id
from equa.microsoft.models import GrantOrigin, MicrosoftGroupGrant
from equa.microsoft.scope import grant_of, granted_elsewhere, normalize_group_id
from equa.microsoft.tenants.routing import graph_for
from equa.organizations.models import Organization
from equa.settings import Settings

GROUP_NAME_MAX = 256


def organization_not_found(organization_id: uuid.UUID) -> AppError:
    return AppError(
        404,
        "organization_not_found",
        f"No organization has the id {organization_id}.",
        "Check the organization's id (`equa microsoft grants` lists the organizations that have grants).",
    )


def grant_not_found(organization_id: uuid.UUID, group_id: str) -> AppError:
    return AppError(
        404,
        "microsoft_grant_not_found",
        f"Group {group_id} is not granted to organization {organization_id}.",
        f"List the organization's grants: equa microsoft grants {organization_id}",
        extra={"organizationId": str(organization_id), "groupId": group_id},
    )


async def _organization(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    organization = await repository.organization(session, organization_id)
    if organization is None:
        raise organization_not_found(organization_id)
    return organization


async def graph_of_organization(
    session: AsyncSession, graph: GraphClient, settings: Settings, organization_id: uuid.UUID
) -> GraphClient:
    """The client of the organization's tenant (multi-tenant mode), where its grants' groups are looked up."""
    if not settings.multi_tenant:
        return graph
    return await graph_for(session, graph, settings, await _organization(session, organization_id))


@dataclass(frozen=True)
class GrantResult:
    grant: MicrosoftGroupGrant
    created: (
        bool  # False: the organization already had this group (granted or created there); nothing changed
    )


async def grant_group(
    session: AsyncSession,
    graph: GraphClient,
    organization_id: uuid.UUID,
    group_id: uuid.UUID | str,
    actor: User | None,
) -> GrantResult:
    """Let `organization_id` link and manage `group_id`.

    404 organization_not_found; 422 validation_failed for an id that is not a GUID; 409
    microsoft_group_granted_elsewhere when another organization holds or has linked the group; 404
    microsoft_group_not_found when the tenant has no such group; 422 microsoft_group_unlinkable (extra `reason`)
    for a group whose members Equa must not or cannot manage (hidden membership, dynamic, role-assignable...).
    """
    organization = await _organization(session, organization_id)
    key = _group_key(group_id)
    existing = await grant_of(session, key)
    if existing is not None:
        if existing.organization_id != organization.id:
            raise granted_elsewhere()
        return GrantResult(existing, created=False)
    linked_by = await repository.organization_linked_to(session, uuid.UUID(key), organization.id)
    if linked_by is not None:
        raise granted_elsewhere()
    try:
        group = await fetch_group(graph, key)
    except GraphNotFound as error:
        raise AppError(
            404,
            "microsoft_group_not_found",
            f"The tenant has no group with id {key}.",
            "Check the id (Microsoft Entra admin center > Groups > Object ID).",
            extra={"microsoftRequestId": error.request_id} if error.request_id else None,
        ) from None
    refusal = linkability(group)
    if refusal is not None:
        raise AppError(
            422,
            "microsoft_group_unlinkable",
            f"This group cannot be granted. {refusal.reason}",
            refusal.action,
            extra={"reason": refusal.code},
        )
    grant = MicrosoftGroupGrant(
        organization_id=organization.id,
        group_id=key,
        origin=GrantOrigin.OPERATOR.value,
        group_name=str(group.get("displayName") or "")[:GROUP_NAME_MAX] or None,
        granted_by=actor.id if actor is not None else None,
        tenant_id=graph.tenant,
    )
    session.add(grant)
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id if actor is not None else None,
        action="group.grant",
        target=key,
        detail=f"An operator granted {group.get('displayName')!r} to this organization.",
    )
    try:
        await session.flush()
    except IntegrityError:
        # Granted to another organization between our check and this write (unique group id).
        raise granted_elsewhere() from None
    return GrantResult(grant, created=True)


@dataclass(frozen=True)
class RevokeResult:
    organization_id: uuid.UUID
    group_id: str
    unlinked: (
        bool  # the organization had the group linked; the link is gone (the group stays in Microsoft 365)
    )


async def revoke_group(
    session: AsyncSession, organization_id: uuid.UUID, group_id: uuid.UUID | str, actor: User | None
) -> RevokeResult:
    """Take the group back from the organization; unlink it there if it is linked (audit event `group.unlink`).

    404 microsoft_grant_not_found when the organization does not hold the group. Graph is not called: the group
    itself and its members stay as they are in Microsoft 365.
    """
    organization = await _organization(session, organization_id)
    key = _group_key(group_id)
    grant = await grant_of(session, key)
    if grant is None or grant.organization_id != organization.id:
        raise grant_not_found(organization.id, key)
    actor_id = actor.id if actor is not None else None
    unlinked = linked_group_id(organization) == key
    if unlinked:
        repository.clear_link(organization)
        record_audit(
            session,
            organization_id=organization.id,
            actor_id=actor_id,
            action="group.unlink",
            target=key,
            detail="Unlinked because an operator revoked the grant; the group was left in Microsoft 365.",
        )
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor_id,
        action="group.revoke",
        target=key,
        detail=f"An operator revoked this organization's access to the group ({grant.origin}).",
    )
    await repository.delete_grant(session, grant)
    await session.flush()
    return RevokeResult(organization.id, key, unlinked)


async def list_grants(
    session: AsyncSession, organization_id: uuid.UUID | None = None
) -> list[MicrosoftGroupGrant]:
    """Every grant (of one organization, or of all), oldest first. Reads only the database."""
    if organization_id is not None:
        await _organization(session, organization_id)
    return await repository.grants(session, organization_id)


async def linked_without_grant(
    session: AsyncSession, organization_id: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, str]]:
    """(organization, group) links that no grant covers: out of scope in `granted` mode until an operator grants
    them (links made before the scope existed, or while the service ran tenant-wide)."""
    links = await repository.links(session, None if organization_id is None else [organization_id])
    if not links:
        return []
    holders = await repository.grant_holders(session, [group for _, group in links])
    return [(org_id, group) for org_id, group in links if holders.get(group) != org_id]


def _group_key(group_id: uuid.UUID | str) -> str:
    try:
        return normalize_group_id(group_id)
    except ValueError:
        raise AppError(
            422,
            "validation_failed",
            "groupId: is not a group object id (a GUID)",
            "Copy the group's Object ID from the Microsoft Entra admin center.",
            extra={"errors": [{"field": "groupId", "message": "is not a GUID"}]},
        ) from None
