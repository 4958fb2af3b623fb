"""Tables of the fleet engine: each tenant's delta rounds, and the changes waiting for a targeted run."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from equa.db.base import Base, TimestampMixin, UTCDateTime, utcnow

DIRECTORY_ID_LENGTH = 64


class DeltaRound(TimestampMixin, Base):
    """Up to 50 linked groups of one tenant tracked by one deltaLink (None until the round has started).

    A round with `takes_over_at` set is a successor taken by compaction (compaction.py): it is not resumed, and from
    that time on it replaces the rounds whose groups it holds; then `takes_over_at` is cleared."""

    __tablename__ = "microsoft_delta_rounds"
    __table_args__ = (Index("ix_microsoft_delta_rounds_tenant_id", "tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64))
    group_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    delta_link: Mapped[str | None] = mapped_column(Text, default=None)
    takes_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ChangeKind(StrEnum):
    TEAM = "team"  # an Equa team change of user_id (organization None: every organization the user is in)
    ADDED = "added"  # directory_id joined the group on the Microsoft side
    REMOVED = "removed"  # directory_id left the group on the Microsoft side
    # The group needs a full reconcile (its deltaLink expired, it was deleted, or it is watched from now on): owed
    # until a full run carrying it succeeds.
    RECONCILE = "reconcile"


class PendingChange(Base):
    """A change not yet carried to a run: written in the transaction that made it (Equa side) or that stored the
    delta round which saw it (Microsoft side), so a crash loses nothing. `run_id` is the run that carries it; a delta
    run deletes it when it finishes, the next cycle deletes those of a full run that succeeded and hands the others
    of a run that ended otherwise to a new run."""

    __tablename__ = "microsoft_pending_changes"
    __table_args__ = (Index("ix_microsoft_pending_changes_organization_id", "organization_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    directory_id: Mapped[str | None] = mapped_column(String(DIRECTORY_ID_LENGTH), default=None)
    run_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
