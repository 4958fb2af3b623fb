"""Team invitations: how an organization admin adds a person by address without learning anything about accounts.

Adding someone always makes a pending invitation with a single-use link that expires in 7 days, whether or not the
address has an account, so the answer is the same either way and tells the admin nothing about other accounts. No
user is created until the person opens the link: a newcomer chooses their own name and password there; someone who
already has an account signs in and accepts. An invitation therefore never takes an address away from its owner,
and never blocks `equa users create`.

Only the SHA-256 of a link's token is stored; the link is shown once, to the admin who invited (and `equa users
invite-link EMAIL` makes a new one, which replaces the old).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User, normalize_email
from equa.accounts.service import create_user, get_user_by_email
from equa.db.base import utcnow
from equa.errors import AppError
from equa.organizations.models import Invitation, Membership, Organization, Role

INVITATION_LIFETIME = timedelta(days=7)
TOKEN_PREFIX = "inv_"


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown once; only its hash is stored

    @property
    def path(self) -> str:
        return f"/invitations/{self.token}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def invitation_not_found() -> AppError:
    return AppError(
        404,
        "invitation_not_found",
        "This invitation link is not known.",
        "Check that the whole link was copied, or ask the organization's admin for a new one.",
    )


def invitation_not_valid() -> AppError:
    return AppError(
        410,
        "invitation_not_valid",
        "This invitation link has expired or has already been used.",
        "Ask the organization's admin for a new invitation (an operator can make one with "
        "`equa users invite-link EMAIL`).",
    )


def account_exists() -> AppError:
    return AppError(
        409,
        "account_exists",
        "An account with this address exists already.",
        "Sign in with it, then open the invitation link again to accept.",
    )


def invitation_for_another_address() -> AppError:
    return AppError(
        403,
        "invitation_for_another_address",
        "This invitation is for another address than the one you are signed in with.",
        "Sign out, then open the link again and sign in (or create the account) with the invited address.",
    )


def already_member(email: str) -> AppError:
    return AppError(
        409,
        "already_member",
        f"email: {email} is already a member of this organization.",
        "Change their role instead.",
        extra={"errors": [{"field": "email", "message": "is already a member"}]},
    )


async def invite(
    session: AsyncSession,
    organization: Organization,
    email: str,
    role: Role,
    invited_by: User | None,
) -> IssuedInvitation:
    """A new pending invitation (replacing a pending one for the same address and organization)."""
    email = email.strip()
    normalized = normalize_email(email)
    # The admin sees the team: telling them someone is on it already reveals nothing new.
    member = await session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization.id, User.email_normalized == normalized)
    )
    if member is not None:
        raise already_member(email)
    now = utcnow()
    await session.execute(
        update(Invitation)
        .where(
            Invitation.organization_id == organization.id,
            Invitation.email_normalized == normalized,
            Invitation.used_at.is_(None),
            Invitation.expires_at > now,
        )
        .values(expires_at=now)
    )
    token = _new_token()
    invitation = Invitation(
        token_hash=_hash(token),
        email=email,
        email_normalized=normalized,
        organization_id=organization.id,
        role=role,
        invited_by=invited_by.id if invited_by else None,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    session.add(invitation)
    await session.flush()
    return IssuedInvitation(invitation, token)


async def pending_invitations(session: AsyncSession, organization: Organization) -> list[Invitation]:
    rows = await session.scalars(
        select(Invitation)
        .where(
            Invitation.organization_id == organization.id,
            Invitation.used_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
        .order_by(Invitation.email_normalized, Invitation.created_at)
    )
    return list(rows)


async def revoke_invitation(
    session: AsyncSession, organization: Organization, invitation_id: uuid.UUID
) -> None:
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None or invitation.organization_id != organization.id:
        raise AppError(404, "invitation_not_found", "This invitation does not exist.", None)
    invitation.expires_at = min(invitation.expires_at, utcnow())
    await session.flush()


async def new_links_for(session: AsyncSession, email: str) -> list[tuple[Organization, IssuedInvitation]]:
    """`equa users invite-link EMAIL`: a fresh link for each organization the address was invited to and has not
    joined (the newest invitation's role); the old links stop working."""
    normalized = normalize_email(email)
    rows = await session.scalars(
        select(Invitation)
        .where(Invitation.email_normalized == normalized, Invitation.used_at.is_(None))
        .order_by(Invitation.created_at.desc())
    )
    newest: dict[uuid.UUID, Invitation] = {}
    for invitation in rows:
        newest.setdefault(invitation.organization_id, invitation)
    issued = []
    for organization_id, invitation in newest.items():
        organization = await session.get(Organization, organization_id)
        if organization is None:
            continue
        try:
            fresh = await invite(session, organization, invitation.email, invitation.role, None)
        except AppError:
            continue  # they joined in the meantime
        fresh.invitation.invited_by = invitation.invited_by
        issued.append((organization, fresh))
    return issued


@dataclass(frozen=True)
class OpenInvitation:
    invitation: Invitation
    organization: Organization


async def open_invitation(session: AsyncSession, token: str, *, for_update: bool = False) -> OpenInvitation:
    """The usable invitation of a link, or the AppError that says why not."""
    statement = select(Invitation).where(Invitation.token_hash == _hash(token))
    if for_update:
        statement = statement.with_for_update()
    invitation = await session.scalar(statement)
    if invitation is None:
        raise invitation_not_found()
    if invitation.used_at is not None or invitation.expires_at <= utcnow():
        raise invitation_not_valid()
    organization = await session.get(Organization, invitation.organization_id)
    if organization is None:
        raise invitation_not_found()
    return OpenInvitation(invitation, organization)


async def _join(session: AsyncSession, opened: OpenInvitation, user: User) -> Membership:
    invitation = opened.invitation
    # Marking it used first, in the same transaction, makes a second use of the link fail.
    result = await session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if not getattr(result, "rowcount", 0):
        raise invitation_not_valid()
    existing = await session.scalar(
        select(Membership).where(
            Membership.organization_id == invitation.organization_id, Membership.user_id == user.id
        )
    )
    if existing is not None:
        return existing
    membership = Membership(
        organization_id=invitation.organization_id, user_id=user.id, role=invitation.role, user=user
    )
    session.add(membership)
    await session.flush()
    return membership


async def accept_as_newcomer(
    session: AsyncSession, token: str, display_name: str, password: str
) -> tuple[User, Membership]:
    """The person has no account: create it with their own name and password, and join."""
    opened = await open_invitation(session, token, for_update=True)
    if await get_user_by_email(session, opened.invitation.email) is not None:
        raise account_exists()
    user = await create_user(session, opened.invitation.email, display_name, password)
    return user, await _join(session, opened, user)


async def accept_as_user(session: AsyncSession, token: str, user: User) -> Membership:
    """A signed-in person joins, if the invitation is for their address."""
    opened = await open_invitation(session, token, for_update=True)
    if opened.invitation.email_normalized != user.email_normalized:
        raise invitation_for_another_address()
    return await _join(session, opened, user)
