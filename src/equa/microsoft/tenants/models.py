"""Tables of multi-tenant mode: which Microsoft 365 tenant each organization connected, and consent round trips."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from equa.db.base import Base, UTCDateTime, utcnow

TENANT_ID_LENGTH = 36


class ConnectionState(StrEnum):
    """What the status answers as `connection`."""

    CONNECTED = "connected"
    NOT_CONNECTED = "not_connected"
    CONSENT_REVOKED = "consent_revoked"


class TenantConnection(Base):
    """An organization's connected tenant: proven (a token and GET /organization) before it was stored.

    A tenant may serve several organizations; each organization has at most one tenant.
    """

    __tablename__ = "microsoft_tenant_connections"
    __table_args__ = (Index("ix_microsoft_tenant_connections_tenant_id", "tenant_id"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(TENANT_ID_LENGTH))
    # The tenant's displayName and default verified domain when connected (untrusted text from Microsoft).
    tenant_name: Mapped[str | None] = mapped_column(String(256), default=None)
    tenant_domain: Mapped[str | None] = mapped_column(String(256), default=None)
    connected_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=ConnectionState.CONNECTED.value)
    # Set when the tenant stopped accepting the app (consent revoked): when, and the sign-in or Graph code.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_code: Mapped[str | None] = mapped_column(String(64), default=None)


class ConsentState(Base):
    """One admin consent round trip: the signed `state` names this row, which is used at most once."""

    __tablename__ = "microsoft_consent_states"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
