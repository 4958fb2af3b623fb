"""Request dependencies that authorize access to one organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.deps import CurrentUser
from equa.accounts.models import User
from equa.db.read_cache import ReadCache, detached_copy, read_through
from equa.deps import DbSession, read_cache_for
from equa.errors import AppError, not_found
from equa.organizations.models import Membership, Organization, Role


@dataclass(frozen=True)
class OrgContext:
    organization: Organization
    membership: Membership
    user: User

    @property
    def is_admin(self) -> bool:
        return self.membership.role == Role.ADMIN


MEMBERSHIP_TABLES = (Organization.__tablename__, Membership.__tablename__)


async def require_org_member(
    request: Request,
    org_id: Annotated[uuid.UUID, Path(description="The organization's id")],
    user: CurrentUser,
    session: DbSession,
) -> OrgContext:
    """The caller's membership of `org_id`. Not a member and no such organization answer the same 404."""
    return await membership_context(session, org_id, user, read_cache_for(request))


async def membership_context(
    session: AsyncSession, org_id: uuid.UUID, user: User, cache: ReadCache | None = None
) -> OrgContext:
    """`user`'s membership of `org_id` (404 when there is none); `cache` may answer for a request that writes nothing."""

    async def load() -> tuple[Organization, Membership] | None:
        result = await session.execute(
            select(Organization, Membership)
            .join(Membership, Membership.organization_id == Organization.id)
            .where(Organization.id == org_id, Membership.user_id == user.id)
        )
        found = result.first()
        return None if found is None else (found[0], found[1])

    async def attach(copies: tuple[Organization, Membership]) -> tuple[Organization, Membership]:
        return await session.merge(copies[0], load=False), await session.merge(copies[1], load=False)

    found = await read_through(
        cache,
        ("membership", org_id, user.id),
        MEMBERSHIP_TABLES,
        load,
        lambda row: (detached_copy(row[0]), detached_copy(row[1])),
        attach,
    )
    if found is None:
        raise not_found("organization")
    organization, membership = found
    return OrgContext(organization=organization, membership=membership, user=user)


async def require_org_admin(context: Annotated[OrgContext, Depends(require_org_member)]) -> OrgContext:
    if not context.is_admin:
        raise AppError(
            403,
            "admin_required",
            "Only an admin of this organization can do this.",
            "Ask one of the organization's admins.",
        )
    return context


OrgMember = Annotated[OrgContext, Depends(require_org_member)]
OrgAdmin = Annotated[OrgContext, Depends(require_org_admin)]
