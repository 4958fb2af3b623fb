"""Flagged members (in the group, not on the team): list them, invite one to the organization, or dismiss one."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.errors import AppError
from equa.microsoft import repository
from equa.microsoft.models import FlaggedMember, FlagStatus
from equa.microsoft.sync.runs import PAGE_SIZE_MAX
from equa.organizations.invitations import IssuedInvitation, invite
from equa.organizations.models import Organization, Role
from equa.pagination import BY_ID, Cursors, keyset_page


def _not_found() -> AppError:
    return AppError(
        404,
        "flagged_member_not_found",
        "This flagged member does not exist.",
        "Reload the flagged members: a flag clears by itself once the person joins the team or leaves the group.",
    )


async def list_flagged(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    cursors: Cursors,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[FlaggedMember], str | None]:
    """Flagged members of the linked group (all, or those with `status`), in a stable order, a page at a time.

    Flags and dismissals belong to the group they were seen in: after a new link, the old group's are not listed.
    """
    if status is not None and status not in {s.value for s in FlagStatus}:
        raise AppError(
            422,
            "validation_failed",
            f"status: must be one of {', '.join(s.value for s in FlagStatus)}",
            f"Use status={', '.join(s.value for s in FlagStatus)}, or leave it out to list them all.",
            extra={"errors": [{"field": "status", "message": "is not a known status"}]},
        )
    organization = await repository.organization(session, organization_id)
    group_id = None if organization is None else organization.microsoft_group

    async def fetch(after: uuid.UUID | None, limit: int) -> list[FlaggedMember]:
        if group_id is None:
            return []
        return await repository.flagged_page(
            session, organization_id, group_id=str(group_id), status=status, after=after, limit=limit
        )

    return await keyset_page(cursors, cursor, limit=limit, max_size=PAGE_SIZE_MAX, keyset=BY_ID, fetch=fetch)


async def get_flagged(session: AsyncSession, organization_id: uuid.UUID, flag_id: uuid.UUID) -> FlaggedMember:
    flag = await repository.flagged_member(session, flag_id)
    if flag is None or flag.organization_id != organization_id:
        raise _not_found()
    return flag


def invitation_address(flag: FlaggedMember) -> str | None:
    """The address to invite: the mailbox, else a sign-in name that is an address (not a guest's #EXT# one)."""
    if flag.email:
        return flag.email
    if flag.user_principal_name and "#ext#" not in flag.user_principal_name.lower():
        return flag.user_principal_name
    return None


async def invite_flagged(
    session: AsyncSession, organization: Organization, flag_id: uuid.UUID, actor: User
) -> tuple[FlaggedMember, IssuedInvitation | None]:
    """Invite the person to the organization, as the team form does; the next sync after they join matches them.

    Also undoes a dismissal. For someone already on the team no invitation is made; asking again for someone
    invited makes a new link (the old one stops working).
    """
    flag = await get_flagged(session, organization.id, flag_id)
    address = invitation_address(flag)
    if address is None:
        raise AppError(
            422,
            "no_address",
            "This group member has no email address to invite.",
            "Give them a mailbox in Microsoft 365, or add them to the team by address yourself.",
        )
    issued: IssuedInvitation | None = None
    try:
        issued = await invite(session, organization, address, Role.MEMBER, actor)
    except AppError as error:
        if error.code != "already_member":
            raise
    flag.status = FlagStatus.INVITED.value
    flag.decided_by = actor.id
    flag.decided_at = utcnow()
    await session.flush()
    return flag, issued


async def dismiss_flagged(
    session: AsyncSession, organization: Organization, flag_id: uuid.UUID, actor: User
) -> FlaggedMember:
    """Stop flagging this group member (until someone invites them after all)."""
    flag = await get_flagged(session, organization.id, flag_id)
    flag.status = FlagStatus.DISMISSED.value
    flag.decided_by = actor.id
    flag.decided_at = utcnow()
    await session.flush()
    return flag


async def restore_flagged(
    session: AsyncSession, organization: Organization, flag_id: uuid.UUID, actor: User
) -> FlaggedMember:
    """Undo a dismissal: the person is flagged again, for an admin to invite or dismiss."""
    flag = await get_flagged(session, organization.id, flag_id)
    if flag.status != FlagStatus.DISMISSED.value:
        raise AppError(
            409,
            "not_dismissed",
            "Only a dismissed flag can be restored.",
            "Reload the flagged members: this person is already flagged or invited.",
        )
    flag.status = FlagStatus.PENDING.value
    flag.decided_by = actor.id
    flag.decided_at = utcnow()
    await session.flush()
    return flag
