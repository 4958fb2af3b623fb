"""The linked group's members: list them a page at a time (matched to Equa's team), add one, remove one.

Adds and removes are audited, and remembered in own_writes so the next listing shows them before Graph does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User, normalize_email
from equa.microsoft import repository
from equa.microsoft.audit import FAILURE, SUCCESS, record_audit
from equa.microsoft.graph import GraphAlreadyExists, GraphClient, GraphError, GraphNotFound
from equa.microsoft.groups.exclusions import note_added, note_removed
from equa.microsoft.groups.linking import (
    linkability,
    linked_group,
    linked_group_id,
    recently_linked,
    require_linked,
    require_linked_in_scope,
    tolerating_replication_lag,
)
from equa.microsoft.groups.page_sizes import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from equa.microsoft.groups.problems import equa_user_not_found, unmanageable, user_not_found
from equa.microsoft.scope import GroupScope
from equa.organizations.models import Organization
from equa.pagination import Cursors, invalid_cursor, skip_token_of

MEMBER_FIELDS = "id,displayName,mail,userPrincipalName,userType"
USER_FIELDS = "id,displayName,mail,userPrincipalName,userType"


def odata_quote(value: str) -> str:
    return value.replace("'", "''")


async def find_tenant_user(graph: GraphClient, address: str) -> dict[str, Any] | None:
    """The tenant user whose mail or userPrincipalName is `address` (None when there is none)."""
    quoted = odata_quote(address.strip())
    response = await graph.get(
        "users",
        params={
            "$filter": f"mail eq '{quoted}' or userPrincipalName eq '{quoted}'",
            "$select": USER_FIELDS,
        },
    )
    found = (response.json() or {}).get("value") or []
    return found[0] if found else None


@dataclass(frozen=True)
class GroupMember:
    id: str
    object_type: str
    display_name: str | None
    mail: str | None
    user_principal_name: str | None
    user_type: str | None
    equa_user_id: uuid.UUID | None


@dataclass(frozen=True)
class MembersPage:
    items: list[GroupMember]
    next_cursor: str | None


async def team_directory(
    session: AsyncSession, organization: Organization
) -> tuple[dict[str, uuid.UUID], ...]:
    """(address -> Equa user id, directory id -> Equa user id) for the organization's team."""
    by_email = await repository.team_addresses(session, organization.id)
    group_id = linked_group_id(organization)
    by_directory_id = (
        await repository.directory_user_ids(session, organization.id, group_id)
        if group_id is not None
        else {}
    )
    return by_email, by_directory_id


def _member_from_graph(
    item: dict[str, Any], by_email: dict[str, uuid.UUID], by_directory_id: dict[str, uuid.UUID]
) -> GroupMember:
    object_type = str(item.get("@odata.type") or "#microsoft.graph.user").rsplit(".", 1)[-1]
    mail = item.get("mail")
    upn = item.get("userPrincipalName")
    equa_user_id = by_directory_id.get(str(item.get("id", "")).lower())
    if equa_user_id is None and object_type == "user":
        for address in (mail, upn):
            if address and normalize_email(address) in by_email:
                equa_user_id = by_email[normalize_email(address)]
                break
    return GroupMember(
        id=str(item.get("id")),
        object_type=object_type,
        display_name=item.get("displayName"),
        mail=mail,
        user_principal_name=upn,
        user_type=item.get("userType"),
        equa_user_id=equa_user_id,
    )


async def list_group_members(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User | None,
    *,
    scope: GroupScope,
    cursors: Cursors,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> MembersPage:
    """One page of the linked group's members (one Graph page, never the whole group), each matched to Equa."""
    group_id = await require_linked_in_scope(session, graph, organization, scope)
    members_url = graph.url_for(f"groups/{group_id}/members")
    limit = max(1, min(MAX_PAGE_SIZE, limit))
    params = {"$select": MEMBER_FIELDS, "$top": str(limit)}
    if cursor is not None:
        # The next request is ours, rebuilt from the signed skip token and page size; nothing else is taken.
        position = cursors.read(cursor, max_size=MAX_PAGE_SIZE)
        if position.skip_token is None:
            raise invalid_cursor()
        limit = position.size
        params = {"$select": MEMBER_FIELDS, "$top": str(limit), "$skiptoken": position.skip_token}

    async def read_page() -> Any:
        return await graph.get(members_url, params=params)

    try:
        response = await tolerating_replication_lag(read_page, recent=recently_linked(organization))
    except GraphNotFound:
        await linked_group(session, graph, organization, actor, "listing members", scope=None)
        raise
    body = response.json() or {}
    by_email, by_directory_id = await team_directory(session, organization)
    next_link = body.get("@odata.nextLink")
    # Graph may not list a member added (or may still list one removed) here a moment ago: show ours.
    listed = graph.own_writes.members_page(
        graph.tenant, group_id, body.get("value") or [], last_page=not next_link
    )
    items = [_member_from_graph(item, by_email, by_directory_id) for item in listed]
    skip_token = skip_token_of(next_link)
    return MembersPage(items, cursors.sign(size=limit, skip_token=skip_token) if skip_token else None)


async def _resolve_user(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    *,
    user_id: uuid.UUID | None,
    email: str | None,
    equa_user: User | None,
) -> dict[str, Any]:
    if user_id is not None:
        try:
            response = await graph.get(f"users/{user_id}", params={"$select": USER_FIELDS})
        except GraphNotFound:
            raise user_not_found(f"the id {user_id}") from None
        user: dict[str, Any] = response.json() or {}
        return user
    if equa_user is not None:
        link = await repository.directory_link(session, organization.id, equa_user.id)
        linked = (
            link.directory_id if link is not None and link.group_id == require_linked(organization) else None
        )
        if linked is not None:
            try:
                response = await graph.get(f"users/{linked}", params={"$select": USER_FIELDS})
                found: dict[str, Any] = response.json() or {}
                return found
            except GraphNotFound:
                pass  # the directory user was deleted since; fall back to the address
        email = equa_user.email
    assert email is not None
    found_user = await find_tenant_user(graph, email)
    if found_user is None:
        raise user_not_found(f"the address {email}")
    return found_user


@dataclass(frozen=True)
class MemberChange:
    member: GroupMember
    added: bool


async def add_group_member(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    *,
    scope: GroupScope,
    user_id: uuid.UUID | None = None,
    email: str | None = None,
    equa_user_id: uuid.UUID | None = None,
) -> MemberChange:
    """Add one user (by directory id, address, or Equa team member) to the linked group.

    `equa_user_id` with `user_id` says which directory account is that team member's. The admin's choice is kept
    (groups.exclusions.note_added): a team member gets an explicit link and is no longer excluded; anyone else is
    remembered as added by hand, and not flagged by the sync. added=False when they already were a member (not an
    error). 404 when the tenant has no such user or equaUserId is not on the team, 422 for guests the tenant's
    policy keeps out (via GraphGuestBlocked) and for groups whose members cannot change.
    """
    equa_user: User | None = None
    if equa_user_id is not None:
        equa_user = await repository.team_member(session, organization.id, equa_user_id)
        if equa_user is None:
            raise equa_user_not_found()
    group = await linked_group(session, graph, organization, actor, "adding a member", scope=scope)
    refusal = linkability(group)
    if refusal is not None:
        raise unmanageable(refusal)
    user = await _resolve_user(
        session, graph, organization, user_id=user_id, email=email, equa_user=equa_user
    )
    group_id = str(group["id"])
    target = str(user.get("userPrincipalName") or user.get("mail") or user["id"])
    added = True
    request_id: str | None = None
    try:
        response = await tolerating_replication_lag(
            lambda: graph.post(
                f"groups/{group_id}/members/$ref",
                json={"@odata.id": graph.url_for(f"directoryObjects/{user['id']}")},
            ),
            recent=recently_linked(organization),
        )
        request_id = response.request_id
    except GraphAlreadyExists as error:
        added = False
        request_id = error.request_id
    except GraphError as error:
        _audit_member_change(session, organization, actor, "member.add", target, failure=error)
        raise
    _audit_member_change(
        session,
        organization,
        actor,
        "member.add",
        target,
        request_id=request_id,
        detail=None if added else "Already a member; nothing changed.",
    )
    if added:
        listed = {"@odata.type": "#microsoft.graph.user", **user}
        graph.own_writes.changed(graph.tenant, group_id, str(user["id"]), present=True, member=listed)
    await note_added(session, organization, actor, group_id.lower(), user, equa_user=equa_user)
    by_email, by_directory_id = await team_directory(session, organization)
    return MemberChange(_member_from_graph(user, by_email, by_directory_id), added)


async def remove_group_member(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    member_id: uuid.UUID,
    *,
    scope: GroupScope,
) -> bool:
    """Remove a member from the linked group; True when they were a member (either way they are not now)."""
    group = await linked_group(session, graph, organization, actor, "removing a member", scope=scope)
    refusal = linkability(group)
    if refusal is not None:
        raise unmanageable(refusal)
    removed = True
    request_id: str | None = None
    try:
        response = await graph.delete(f"groups/{group['id']}/members/{member_id}/$ref")
        request_id = response.request_id
    except GraphNotFound as error:
        removed = False
        request_id = error.request_id
    except GraphError as error:
        _audit_member_change(session, organization, actor, "member.remove", str(member_id), failure=error)
        raise
    _audit_member_change(
        session,
        organization,
        actor,
        "member.remove",
        str(member_id),
        request_id=request_id,
        detail=None if removed else "Was not a member; nothing changed.",
    )
    if removed:
        graph.own_writes.changed(graph.tenant, str(group["id"]), str(member_id), present=False)
    await note_removed(session, graph, organization, actor, str(group["id"]).lower(), str(member_id))
    return removed


def _audit_member_change(
    session: AsyncSession,
    organization: Organization,
    actor: User,
    action: str,
    target: str,
    *,
    failure: GraphError | None = None,
    request_id: str | None = None,
    detail: str | None = None,
) -> None:
    """The audit event of one member added or removed by an admin, or of the attempt that failed."""
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action=action,
        target=target,
        outcome=FAILURE if failure is not None else SUCCESS,
        detail=failure.message if failure is not None else detail,
        request_id=failure.request_id if failure is not None else request_id,
    )


OWNERS_SHOWN = 100  # Microsoft 365 groups have at most 100 owners


async def group_owner_ids(graph: GraphClient, organization: Organization) -> set[str]:
    """The directory ids of the linked group's owners (one Graph call), to mark them in the members list."""
    group_id = require_linked(organization)
    response = await graph.get(
        graph.url_for(f"groups/{group_id}/owners"), params={"$select": "id", "$top": str(OWNERS_SHOWN)}
    )
    return {str(item.get("id", "")).lower() for item in (response.json() or {}).get("value") or []}
