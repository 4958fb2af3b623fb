"""Request dependencies that authorize access to one organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path
from sqlalchemy import select

from equa.accounts.deps import CurrentUser
from equa.accounts.models import User
from equa.db.session import DbSession
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


async def require_org_member(
    org_id: Annotated[uuid.UUID, Path(description="The organization's id")],
    user: CurrentUser,
    session: DbSession,
) -> OrgContext:
    """The caller's membership of `org_id`. Not a member and no such organization answer the same 404."""
    result = await session.execute(
        select(Organization, Membership)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Organization.id == org_id, Membership.user_id == user.id)
    )
    found = result.first()
    if found is None:
        raise not_found("organization")
    organization, membership = found.tuple()
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
