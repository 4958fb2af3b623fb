"""Organizations and their team: creation, members, roles, and the last-admin rule."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.accounts.service import create_user, get_user_by_email
from equa.errors import AppError
from equa.organizations.models import Membership, Organization, Role


def _member_not_found() -> AppError:
    return AppError(404, "member_not_found", "This person is not a member of the organization.", None)


def _last_admin(action: str) -> AppError:
    return AppError(
        409,
        "last_admin",
        f"The organization's last admin cannot be {action}.",
        "Make another member an admin first.",
    )


async def create_organization(session: AsyncSession, name: str, creator: User) -> Organization:
    """A new organization whose creator is its first admin."""
    organization = Organization(name=name)
    session.add(organization)
    await session.flush()
    session.add(Membership(organization_id=organization.id, user_id=creator.id, role=Role.ADMIN))
    await session.flush()
    return organization


async def organizations_of(session: AsyncSession, user: User) -> list[tuple[Organization, Membership]]:
    result = await session.execute(
        select(Organization, Membership)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id)
        .order_by(Organization.name, Organization.id)
    )
    return [(row[0], row[1]) for row in result]


async def get_membership(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID
) -> Membership | None:
    return await session.scalar(
        select(Membership).where(Membership.organization_id == organization_id, Membership.user_id == user_id)
    )


async def list_members(session: AsyncSession, organization: Organization) -> list[Membership]:
    result = await session.scalars(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization.id)
        .order_by(User.email_normalized)
    )
    return list(result)


async def team_emails(session: AsyncSession, organization: Organization) -> list[str]:
    """The normalized addresses of the organization's active members (what a sync compares with a group)."""
    result = await session.scalars(
        select(User.email_normalized)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization.id, User.is_active.is_(True))
        .order_by(User.email_normalized)
    )
    return list(result)


async def add_member(
    session: AsyncSession,
    organization: Organization,
    email: str,
    role: Role,
    display_name: str | None = None,
) -> Membership:
    """Add a person by address; an unknown address becomes an invited user without a password."""
    user = await get_user_by_email(session, email)
    if user is None:
        user = await create_user(session, email, display_name)
    elif await get_membership(session, organization.id, user.id) is not None:
        raise AppError(
            409,
            "already_member",
            f"email: {user.email} is already a member of this organization.",
            "Change their role instead.",
            extra={"errors": [{"field": "email", "message": "is already a member"}]},
        )
    membership = Membership(organization_id=organization.id, user_id=user.id, role=role, user=user)
    session.add(membership)
    await session.flush()
    return membership


async def _lock_organization(session: AsyncSession, organization: Organization) -> None:
    # Serializes concurrent role changes on PostgreSQL so two admins cannot demote each other to none.
    # SQLite ignores FOR UPDATE, but it allows a single writer at a time, which gives the same guarantee.
    await session.execute(select(Organization.id).where(Organization.id == organization.id).with_for_update())


async def _admin_count(session: AsyncSession, organization: Organization) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.organization_id == organization.id, Membership.role == Role.ADMIN)
    )
    return int(count or 0)


async def change_role(
    session: AsyncSession, organization: Organization, user_id: uuid.UUID, role: Role
) -> Membership:
    await _lock_organization(session, organization)
    membership = await get_membership(session, organization.id, user_id)
    if membership is None:
        raise _member_not_found()
    if (
        membership.role == Role.ADMIN
        and role != Role.ADMIN
        and await _admin_count(session, organization) <= 1
    ):
        raise _last_admin("demoted")
    membership.role = role
    await session.flush()
    return membership


async def remove_member(session: AsyncSession, organization: Organization, user_id: uuid.UUID) -> None:
    await _lock_organization(session, organization)
    membership = await get_membership(session, organization.id, user_id)
    if membership is None:
        raise _member_not_found()
    if membership.role == Role.ADMIN and await _admin_count(session, organization) <= 1:
        raise _last_admin("removed")
    await session.delete(membership)
    await session.flush()
