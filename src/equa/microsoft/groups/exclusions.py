"""The admin's intent about who is in the group, kept so the sync respects it.

- Removing a team member from the group by hand excludes them: the sync does not add them back (outcome
  `excluded`) until an admin allows them again, or adds them by hand.
- Adding someone by hand records who they are: a team member gets an explicit link (later syncs use that directory
  account for them, whatever their addresses say); someone not on the team is remembered as added by hand, so the
  sync does not flag them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User, normalize_email
from equa.errors import AppError
from equa.microsoft import repository
from equa.microsoft.audit import record_audit
from equa.microsoft.graph import GraphClient, GraphError, GraphNotFound
from equa.microsoft.groups.page_sizes import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from equa.microsoft.models import HandAddedMember, MatchedBy, MicrosoftExclusion, MicrosoftMember
from equa.organizations.models import Organization
from equa.pagination import BY_CREATED_AND_ID, Cursors, Keyset, keyset_page

log = logging.getLogger("equa.microsoft.groups")

ADDRESS_FIELDS = "id,mail,userPrincipalName"


@dataclass(frozen=True)
class Exclusion:
    user_id: uuid.UUID
    email: str
    display_name: str | None
    excluded_at: datetime
    excluded_by: uuid.UUID | None
    # The exclusion's own id: with excluded_at, its place in the list (a page cursor's position).
    exclusion_id: uuid.UUID


# Newest first, by (excluded_at, exclusion id), as the audit trail and sync runs are.
NEWEST_EXCLUSION_FIRST: Keyset[Exclusion, tuple[datetime, uuid.UUID]] = Keyset(
    position=lambda e: (e.excluded_at.isoformat(), str(e.exclusion_id)), key=BY_CREATED_AND_ID.key
)


def exclusion_not_found() -> AppError:
    return AppError(
        404,
        "exclusion_not_found",
        "This person is not excluded from the group.",
        "Reload the list: they may have been allowed again, or added to the group by hand.",
    )


async def list_exclusions(
    session: AsyncSession,
    organization: Organization,
    *,
    cursors: Cursors,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> tuple[list[Exclusion], str | None]:
    """The organization's excluded team members, newest first, a page at a time; and the next page's cursor."""

    async def fetch(after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Exclusion]:
        rows = await repository.exclusions_page(session, organization.id, after=after, limit=limit)
        return [
            Exclusion(
                user.id, user.email, user.display_name, excluded.created_at, excluded.excluded_by, excluded.id
            )
            for excluded, user in rows
        ]

    return await keyset_page(
        cursors, cursor, limit=limit, max_size=MAX_PAGE_SIZE, keyset=NEWEST_EXCLUSION_FIRST, fetch=fetch
    )


async def allow_again(
    session: AsyncSession, organization: Organization, actor: User, user_id: uuid.UUID
) -> Exclusion:
    """Lift an exclusion: the next sync adds the person again. 404 when they are not excluded."""
    excluded = await repository.exclusion(session, organization.id, user_id)
    user = await repository.team_member(session, organization.id, user_id)
    if excluded is None:
        raise exclusion_not_found()
    found = Exclusion(
        user_id,
        user.email if user else "",
        user.display_name if user else None,
        excluded.created_at,
        excluded.excluded_by,
        excluded.id,
    )
    await session.delete(excluded)
    _audit(session, organization, actor, "member.allow", user, "Allowed again: the next sync adds them.")
    await session.flush()
    return found


async def exclude(session: AsyncSession, organization: Organization, actor: User, user: User) -> None:
    """Remember that an admin removed this team member from the group (once; a second removal changes nothing)."""
    if await repository.exclusion(session, organization.id, user.id) is not None:
        return
    session.add(MicrosoftExclusion(organization_id=organization.id, user_id=user.id, excluded_by=actor.id))
    _audit(
        session,
        organization,
        actor,
        "member.exclude",
        user,
        "Removed from the group by an admin: the sync does not add them back until they are allowed again.",
    )


async def team_member_of(
    session: AsyncSession, graph: GraphClient, organization: Organization, group_id: str, directory_id: str
) -> User | None:
    """The team member a directory user is: by their link in this group, else by address (one Graph read)."""
    user_id = await repository.user_linked_to(session, organization.id, group_id, directory_id)
    if user_id is None:
        try:
            response = await graph.get(f"users/{directory_id}", params={"$select": ADDRESS_FIELDS})
        except GraphNotFound:
            return None
        return await team_member_by_address(session, organization, response.json() or {})
    return await repository.team_member(session, organization.id, user_id)


async def team_member_by_address(
    session: AsyncSession, organization: Organization, directory_user: dict[str, Any]
) -> User | None:
    """The team member whose address is the directory user's mail or userPrincipalName, if any."""
    by_email = await repository.team_addresses(session, organization.id)
    for address in (directory_user.get("mail"), directory_user.get("userPrincipalName")):
        if isinstance(address, str) and address and normalize_email(address) in by_email:
            return await repository.team_member(session, organization.id, by_email[normalize_email(address)])
    return None


async def note_removed(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    group_id: str,
    member_id: str,
) -> None:
    """An admin removed this directory user from the group: exclude the team member they are, forget a hand add."""
    await repository.forget_hand_added(session, organization.id, group_id, member_id)
    try:
        user = await team_member_of(session, graph, organization, group_id, member_id)
    except GraphError as error:
        # The removal stands; only the exclusion is missing (the sync may add them back): say so to operators.
        log.warning(
            "organization %s: could not tell who the removed member is: %s", organization.id, error.code
        )
        return
    if user is not None:
        await exclude(session, organization, actor, user)


async def note_added(
    session: AsyncSession,
    organization: Organization,
    actor: User,
    group_id: str,
    directory_user: dict[str, Any],
    *,
    equa_user: User | None,
) -> None:
    """An admin added this directory user to the group (or found them there already).

    `equa_user` when the admin said who they are; else the team member with their address, if any. A team member
    gets an explicit link and loses an exclusion; anyone else is remembered as added by hand.
    """
    directory_id = str(directory_user["id"]).lower()
    user = equa_user or await team_member_by_address(session, organization, directory_user)
    if user is None:
        if directory_id not in await repository.hand_added_ids(session, organization.id, group_id):
            session.add(
                HandAddedMember(
                    organization_id=organization.id,
                    group_id=group_id,
                    directory_id=directory_id,
                    added_by=actor.id,
                )
            )
        return
    await _link_explicitly(session, organization, group_id, user, directory_id)
    excluded = await repository.exclusion(session, organization.id, user.id)
    if excluded is not None:
        await session.delete(excluded)
        _audit(session, organization, actor, "member.allow", user, "Added by hand: no longer excluded.")


async def _link_explicitly(
    session: AsyncSession, organization: Organization, group_id: str, user: User, directory_id: str
) -> None:
    link = await repository.directory_link(session, organization.id, user.id)
    if link is None:
        session.add(
            MicrosoftMember(
                organization_id=organization.id,
                group_id=group_id,
                user_id=user.id,
                directory_id=directory_id,
                matched_by=MatchedBy.EXPLICIT.value,
                matched_email=user.email_normalized,
                added_by_sync=False,
            )
        )
        return
    same = link.group_id == group_id and link.directory_id.lower() == directory_id
    link.added_by_sync = link.added_by_sync and same
    link.group_id = group_id
    link.directory_id = directory_id
    link.matched_by = MatchedBy.EXPLICIT.value
    link.matched_email = user.email_normalized


def _audit(
    session: AsyncSession,
    organization: Organization,
    actor: User,
    action: str,
    user: User | None,
    detail: str,
) -> None:
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action=action,
        target=user.email if user else None,
        detail=detail,
    )
