"""The Microsoft domain's SQL: every query its services and routes make, and nothing else.

Organizations' link columns, grants, group creations, the team and its directory links, flagged members and
exclusions (audit events, sync runs and retention: history_repository.py). Functions take the caller's session and only read, add, delete and flush: the caller commits
(ARCHITECTURE, rule 2). Keyset pages are asked for with the last row's key (`after`) and return up to `limit` rows;
the cursors that carry those keys are equa.pagination's. The sync's own persistence (sync/recorder.py,
sync/lifecycle.py) keeps its writes next to the code that makes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.microsoft.models import (
    FlaggedMember,
    FlagStatus,
    GroupCreation,
    HandAddedMember,
    MicrosoftExclusion,
    MicrosoftGroupGrant,
    MicrosoftMember,
)
from equa.organizations.models import Membership, Organization

# --- organizations and their link columns -----------------------------------------------------------------


async def organization(session: AsyncSession, organization_id: uuid.UUID) -> Organization | None:
    return await session.get(Organization, organization_id)


async def lock_organization(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Lock the organization's row until the transaction ends (PostgreSQL; SQLite locks the whole database)."""
    await session.execute(select(Organization.id).where(Organization.id == organization_id).with_for_update())


def set_link(organization: Organization, group_id: uuid.UUID, actor_id: uuid.UUID) -> None:
    organization.microsoft_group = group_id
    organization.microsoft_group_linked_by = actor_id
    organization.microsoft_group_linked_at = utcnow()


def clear_link(organization: Organization) -> None:
    organization.microsoft_group = None
    organization.microsoft_group_linked_by = None
    organization.microsoft_group_linked_at = None


async def organization_linked_to(
    session: AsyncSession, group_id: uuid.UUID, other_than: uuid.UUID
) -> uuid.UUID | None:
    """Another organization that has `group_id` linked, if any."""
    return await session.scalar(
        select(Organization.id).where(Organization.microsoft_group == group_id, Organization.id != other_than)
    )


async def organizations_linked_to(
    session: AsyncSession, group_ids: Collection[uuid.UUID]
) -> dict[str, uuid.UUID]:
    """Group id (lower-case text) -> the organization that has it linked, for those of `group_ids` that are."""
    rows = await session.execute(
        select(Organization.microsoft_group, Organization.id).where(
            Organization.microsoft_group.in_(group_ids)
        )
    )
    return {str(group_id): organization_id for group_id, organization_id in rows}


async def linked_organizations(session: AsyncSession) -> list[Organization]:
    """Every organization with a group linked, by id."""
    rows = await session.scalars(
        select(Organization).where(Organization.microsoft_group.is_not(None)).order_by(Organization.id)
    )
    return list(rows)


async def links(
    session: AsyncSession,
    organization_ids: Collection[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, str]]:
    """(organization, group id) of every link (of `organization_ids` only, when given), by organization id."""
    query = select(Organization.id, Organization.microsoft_group).where(
        Organization.microsoft_group.is_not(None)
    )
    if organization_ids is not None:
        query = query.where(Organization.id.in_(organization_ids))
    return [
        (org_id, str(group_id)) for org_id, group_id in await session.execute(query.order_by(Organization.id))
    ]


async def auto_sync_organizations(session: AsyncSession) -> list[Organization]:
    """Organizations with autoSync on and a group linked."""
    rows = await session.scalars(
        select(Organization).where(
            Organization.microsoft_auto_sync.is_(True), Organization.microsoft_group.is_not(None)
        )
    )
    return list(rows)


# --- grants (granted and created groups) ------------------------------------------------------------------


async def grant_by_group(session: AsyncSession, group_key: str) -> MicrosoftGroupGrant | None:
    """The grant of a group (by its normalized id), whichever organization holds it."""
    return await session.scalar(select(MicrosoftGroupGrant).where(MicrosoftGroupGrant.group_id == group_key))


async def granted_group_ids(session: AsyncSession, organization_id: uuid.UUID) -> list[str]:
    """The organization's granted and created groups, oldest grant first."""
    rows = await session.scalars(
        select(MicrosoftGroupGrant.group_id)
        .where(MicrosoftGroupGrant.organization_id == organization_id)
        .order_by(MicrosoftGroupGrant.granted_at, MicrosoftGroupGrant.group_id)
    )
    return list(rows)


async def grant_holders(session: AsyncSession, group_keys: Collection[str]) -> dict[str, uuid.UUID]:
    """Group id -> the organization holding its grant, for those of `group_keys` that are granted."""
    rows = await session.execute(
        select(MicrosoftGroupGrant.group_id, MicrosoftGroupGrant.organization_id).where(
            MicrosoftGroupGrant.group_id.in_(group_keys)
        )
    )
    return {group_id: organization_id for group_id, organization_id in rows}


async def grants(
    session: AsyncSession, organization_id: uuid.UUID | None = None
) -> list[MicrosoftGroupGrant]:
    """Every grant (of one organization, or of all), by organization, oldest first."""
    query = select(MicrosoftGroupGrant)
    if organization_id is not None:
        query = query.where(MicrosoftGroupGrant.organization_id == organization_id)
    rows = await session.scalars(
        query.order_by(
            MicrosoftGroupGrant.organization_id, MicrosoftGroupGrant.granted_at, MicrosoftGroupGrant.group_id
        )
    )
    return list(rows)


async def delete_grant(session: AsyncSession, grant: MicrosoftGroupGrant) -> None:
    await session.delete(grant)


# --- group creations (create-group's attempts) ------------------------------------------------------------


async def creation_by_key(
    session: AsyncSession, organization_id: uuid.UUID, key: str
) -> GroupCreation | None:
    return await session.scalar(
        select(GroupCreation).where(
            GroupCreation.organization_id == organization_id, GroupCreation.idempotency_key == key
        )
    )


async def creations_since(session: AsyncSession, organization_id: uuid.UUID, since: datetime) -> int:
    """How many create-group attempts the organization made after `since`."""
    count = await session.scalar(
        select(func.count())
        .select_from(GroupCreation)
        .where(GroupCreation.organization_id == organization_id, GroupCreation.created_at > since)
    )
    return count or 0


async def oldest_creation_since(
    session: AsyncSession, organization_id: uuid.UUID, since: datetime
) -> datetime | None:
    return await session.scalar(
        select(func.min(GroupCreation.created_at)).where(
            GroupCreation.organization_id == organization_id, GroupCreation.created_at > since
        )
    )


# --- the team and its directory links ---------------------------------------------------------------------


async def team_addresses(session: AsyncSession, organization_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """Normalized address -> Equa user id, for the organization's team."""
    rows = await session.execute(
        select(User.email_normalized, User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization_id)
    )
    return {email: user_id for email, user_id in rows}


async def active_team(
    session: AsyncSession, organization_id: uuid.UUID, *, only: Collection[uuid.UUID] | None = None
) -> list[tuple[uuid.UUID, str, str | None]]:
    """(user id, normalized address, display name) of the organization's active members (of `only`, if given)."""
    statement = (
        select(User.id, User.email_normalized, User.display_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization_id, User.is_active.is_(True))
    )
    if only is not None:
        statement = statement.where(User.id.in_(list(only)))
    rows = await session.execute(statement)
    return [(user_id, email, name) for user_id, email, name in rows]


async def organizations_of_users(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Organization id -> which of these users are its members (active or not)."""
    rows = await session.execute(
        select(Membership.organization_id, Membership.user_id).where(Membership.user_id.in_(list(user_ids)))
    )
    found: dict[uuid.UUID, set[uuid.UUID]] = {}
    for organization_id, user_id in rows:
        found.setdefault(organization_id, set()).add(user_id)
    return found


async def team_member(session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
    """The Equa user, if they are a member of the organization."""
    rows = await session.execute(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization_id, User.id == user_id)
    )
    return rows.scalar_one_or_none()


async def directory_links(
    session: AsyncSession, organization_id: uuid.UUID, group_id: str
) -> list[MicrosoftMember]:
    """The organization's links between Equa users and directory users, made for the group `group_id`."""
    return list(
        await session.scalars(
            select(MicrosoftMember).where(
                MicrosoftMember.organization_id == organization_id, MicrosoftMember.group_id == group_id
            )
        )
    )


async def directory_user_ids(
    session: AsyncSession, organization_id: uuid.UUID, group_id: str
) -> dict[str, uuid.UUID]:
    """Directory id (lower-case) -> the Equa user linked to it in this organization, for the group `group_id`."""
    rows = await session.execute(
        select(MicrosoftMember.directory_id, MicrosoftMember.user_id).where(
            MicrosoftMember.organization_id == organization_id, MicrosoftMember.group_id == group_id
        )
    )
    return {directory_id.lower(): user_id for directory_id, user_id in rows}


async def directory_link(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID
) -> MicrosoftMember | None:
    """The Equa user's link in this organization (made for whichever group), if any."""
    return await session.scalar(
        select(MicrosoftMember).where(
            MicrosoftMember.organization_id == organization_id, MicrosoftMember.user_id == user_id
        )
    )


async def forget_group_state(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Drop the organization's links, flags and people added by hand: the next group linked starts fresh."""
    for model in (MicrosoftMember, FlaggedMember, HandAddedMember):
        await session.execute(delete(model).where(model.organization_id == organization_id))


# --- flagged members --------------------------------------------------------------------------------------


async def dismissed_directory_ids(
    session: AsyncSession, organization_id: uuid.UUID, group_id: str
) -> set[str]:
    rows = await session.scalars(
        select(FlaggedMember.directory_id).where(
            FlaggedMember.organization_id == organization_id,
            FlaggedMember.group_id == group_id,
            FlaggedMember.status == FlagStatus.DISMISSED.value,
        )
    )
    return set(rows)


async def clear_flags(
    session: AsyncSession, organization_id: uuid.UUID, directory_ids: Collection[str]
) -> None:
    """Clear the flags of people now matched to the team (a dismissal is a decision: it is kept)."""
    if directory_ids:
        await session.execute(
            delete(FlaggedMember).where(
                FlaggedMember.organization_id == organization_id,
                FlaggedMember.directory_id.in_(list(directory_ids)),
                FlaggedMember.status != FlagStatus.DISMISSED.value,
            )
        )


async def flagged_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    group_id: str | None,
    status: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[FlaggedMember]:
    """Up to `limit` flagged members of the group `group_id` (with `status`, if given) after `after`, by id."""
    statement = select(FlaggedMember).where(
        FlaggedMember.organization_id == organization_id, FlaggedMember.group_id == group_id
    )
    if status is not None:
        statement = statement.where(FlaggedMember.status == status)
    if after is not None:
        statement = statement.where(FlaggedMember.id > after)
    return list(await session.scalars(statement.order_by(FlaggedMember.id).limit(limit)))


async def flag_statuses(
    session: AsyncSession, organization_id: uuid.UUID, group_id: str | None, directory_ids: list[str]
) -> dict[str, str]:
    """directory id -> the status of that person's flag in the group `group_id`, for the given people."""
    if not directory_ids or group_id is None:
        return {}
    rows = await session.execute(
        select(FlaggedMember.directory_id, FlaggedMember.status).where(
            FlaggedMember.organization_id == organization_id,
            FlaggedMember.group_id == group_id,
            FlaggedMember.directory_id.in_(directory_ids),
        )
    )
    return {directory_id: status for directory_id, status in rows}


async def flagged_member(session: AsyncSession, flag_id: uuid.UUID) -> FlaggedMember | None:
    return await session.get(FlaggedMember, flag_id)


# --- exclusions and people added by hand ------------------------------------------------------------------


async def exclusion(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID
) -> MicrosoftExclusion | None:
    return await session.scalar(
        select(MicrosoftExclusion).where(
            MicrosoftExclusion.organization_id == organization_id, MicrosoftExclusion.user_id == user_id
        )
    )


async def exclusions_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[MicrosoftExclusion, User]]:
    """Up to `limit` of the organization's exclusions with their people, newest first: (created_at, id) below
    `after`, so a page never skips or repeats one however names change."""
    statement = (
        select(MicrosoftExclusion, User)
        .join(User, User.id == MicrosoftExclusion.user_id)
        .where(MicrosoftExclusion.organization_id == organization_id)
    )
    if after is not None:
        stamp, after_id = after
        statement = statement.where(
            or_(
                MicrosoftExclusion.created_at < stamp,
                and_(MicrosoftExclusion.created_at == stamp, MicrosoftExclusion.id < after_id),
            )
        )
    rows = await session.execute(
        statement.order_by(MicrosoftExclusion.created_at.desc(), MicrosoftExclusion.id.desc()).limit(limit)
    )
    return [(excluded, user) for excluded, user in rows]


async def excluded_user_ids(session: AsyncSession, organization_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(MicrosoftExclusion.user_id).where(MicrosoftExclusion.organization_id == organization_id)
    )
    return set(rows)


async def hand_added_ids(session: AsyncSession, organization_id: uuid.UUID, group_id: str) -> set[str]:
    """Directory ids of the people an admin added to the group `group_id` by hand (not on the team)."""
    rows = await session.scalars(
        select(HandAddedMember.directory_id).where(
            HandAddedMember.organization_id == organization_id, HandAddedMember.group_id == group_id
        )
    )
    return set(rows)


async def forget_hand_added(
    session: AsyncSession, organization_id: uuid.UUID, group_id: str, directory_id: str
) -> None:
    await session.execute(
        delete(HandAddedMember).where(
            HandAddedMember.organization_id == organization_id,
            HandAddedMember.group_id == group_id,
            HandAddedMember.directory_id == directory_id,
        )
    )


async def user_linked_to(
    session: AsyncSession, organization_id: uuid.UUID, group_id: str, directory_id: str
) -> uuid.UUID | None:
    """The Equa user linked to this directory user for the group `group_id`, if any."""
    return await session.scalar(
        select(MicrosoftMember.user_id).where(
            MicrosoftMember.organization_id == organization_id,
            MicrosoftMember.group_id == group_id,
            func.lower(MicrosoftMember.directory_id) == directory_id.lower(),
        )
    )
