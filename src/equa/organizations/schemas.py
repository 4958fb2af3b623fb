"""Request and response bodies of the organizations API (camelCase JSON)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import EmailStr, Field, StringConstraints

from equa.accounts.schemas import CamelModel, DisplayName
from equa.organizations.models import ORGANIZATION_NAME_MAX_LENGTH, Invitation, Membership, Organization, Role

# Long enough to resist guessing, short enough that hashing it costs what any other password does.
NewPassword = Annotated[str, Field(min_length=10, max_length=1024)]

OrganizationName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ORGANIZATION_NAME_MAX_LENGTH)
]


class OrganizationCreateIn(CamelModel):
    name: OrganizationName


class OrganizationOut(CamelModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    role: Role
    microsoft_group: uuid.UUID | None

    @classmethod
    def of(cls, organization: Organization, membership: Membership) -> OrganizationOut:
        return cls(
            id=organization.id,
            name=organization.name,
            created_at=organization.created_at,
            role=membership.role,
            microsoft_group=organization.microsoft_group,
        )


class MemberAddIn(CamelModel):
    email: EmailStr
    # Accepted for older clients and ignored: the person chooses their own name when they accept.
    display_name: DisplayName | None = None
    role: Role = Role.MEMBER


class MemberUpdateIn(CamelModel):
    role: Role


class MemberOut(CamelModel):
    user_id: uuid.UUID
    email: str
    display_name: str
    role: Role
    invited: bool
    created_at: datetime

    @classmethod
    def of(cls, membership: Membership) -> MemberOut:
        user = membership.user
        return cls(
            user_id=user.id,
            email=user.email,
            display_name=user.display_name,
            role=membership.role,
            # Invited: added by address, has not set a password yet.
            invited=user.password_hash is None,
            created_at=membership.created_at,
        )


class InvitationOut(CamelModel):
    """A pending invitation. The same shape whether or not the address has an account."""

    id: uuid.UUID
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, invitation: Invitation) -> InvitationOut:
        return cls(
            id=invitation.id,
            email=invitation.email,
            role=invitation.role,
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
        )


class InvitationCreatedOut(InvitationOut):
    invitation_url: str = Field(
        description="The single-use link to send to the person. It is shown only in this response."
    )


class InvitationDetailsOut(CamelModel):
    """What the holder of an invitation link may read about it."""

    organization_name: str
    email: str
    role: Role
    expires_at: datetime


class InvitationAcceptIn(CamelModel):
    display_name: DisplayName
    password: NewPassword
