"""Organization and Membership tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from equa.accounts.models import User
from equa.db.base import Base, UTCDateTime, utcnow

ORGANIZATION_NAME_MAX_LENGTH = 200


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(ORGANIZATION_NAME_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # The spec's microsoftGroup: UNIQUE because one Microsoft 365 group cannot serve two organizations.
    microsoft_group: Mapped[uuid.UUID | None] = mapped_column(unique=True, default=None)
    microsoft_group_linked_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    microsoft_group_linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    microsoft_auto_sync: Mapped[bool] = mapped_column(default=False)
    microsoft_remove_departed: Mapped[bool] = mapped_column(default=False)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="organization", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Organization(id={self.id}, name={self.name!r})"


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id"),
        Index("ix_memberships_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            name="membership_role",
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"Membership(organization_id={self.organization_id}, user_id={self.user_id}, role={self.role})"


class Invitation(Base):
    """A pending invitation to join an organization, for an address that has no account yet.

    No user exists until the person opens the link and chooses their own name and password, so an invitation
    never takes an address away from its owner. Only the SHA-256 of the link's token is stored.
    """

    __tablename__ = "invitations"
    __table_args__ = (
        Index("ix_invitations_email_normalized", "email_normalized"),
        Index("ix_invitations_organization_id", "organization_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(String(320))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            name="membership_role",
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    def __repr__(self) -> str:
        # The address stays out: reprs reach logs.
        return f"Invitation(id={self.id}, organization_id={self.organization_id})"
