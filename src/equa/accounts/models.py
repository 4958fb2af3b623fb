"""User and ApiToken tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from equa.db.base import Base, TimestampMixin, UTCDateTime, utcnow

EMAIL_MAX_LENGTH = 320
DISPLAY_NAME_MAX_LENGTH = 200
TOKEN_NAME_MAX_LENGTH = 100


def normalize_email(email: str) -> str:
    """The form used for uniqueness and matching: addresses differ only by case are the same mailbox here."""
    return email.strip().lower()


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # `email` keeps what the person typed, for display; `email_normalized` is what uniqueness and lookups use.
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    email_normalized: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH))
    # None for invited members who have not chosen a password: they cannot sign in with one.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    is_platform_admin: Mapped[bool] = mapped_column(default=False)

    api_tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        # Deliberately omits the password hash.
        return f"User(id={self.id}, email={self.email!r})"


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_MAX_LENGTH))
    # Only the SHA-256 of the token is stored; the token itself is shown once, at creation.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, so a person can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    user: Mapped[User] = relationship(back_populates="api_tokens")

    def __repr__(self) -> str:
        return f"ApiToken(id={self.id}, prefix={self.prefix!r}, user_id={self.user_id})"


class BrowserSessionRecord(Base):
    """One signed-in browser. The cookie names the row; signing out revokes it, so a copied cookie dies with it."""

    __tablename__ = "browser_sessions"
    __table_args__ = (Index("ix_browser_sessions_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    def __repr__(self) -> str:
        return f"BrowserSessionRecord(id={self.id}, user_id={self.user_id})"


class SignInThrottle(Base):
    """Failed sign-ins of one account or one client address, and until when the next try must wait.

    `key` is a keyed hash of the address or client address, so the table names nobody.
    """

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"SignInThrottle(failures={self.failures})"
