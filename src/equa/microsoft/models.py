"""Tables of the Microsoft 365 integration: identity links, flagged members, sync runs, audit, group creations."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from equa.db.base import Base, TimestampMixin, UTCDateTime, utcnow

DIRECTORY_ID_LENGTH = 36  # a directory object id is a GUID in its 36-character text form


class MatchedBy(StrEnum):
    """How an Equa user was tied to a directory user; kept so a changed address triggers a new lookup."""

    MAIL = "mail"
    USER_PRINCIPAL_NAME = "userPrincipalName"
    PROXY_ADDRESS = "proxyAddresses"
    EXPLICIT = "explicit"  # an admin added this directory user for this Equa user by id


class MicrosoftMember(TimestampMixin, Base):
    """The directory user an Equa team member resolves to, so later syncs need no lookup."""

    __tablename__ = "microsoft_members"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id"),
        Index("ix_microsoft_members_org_directory", "organization_id", "directory_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The group the link was made for (lower-case GUID text): a link, and added_by_sync, hold only in that group;
    # a link to another group starts fresh.
    group_id: Mapped[str | None] = mapped_column(String(DIRECTORY_ID_LENGTH), default=None)
    directory_id: Mapped[str] = mapped_column(String(DIRECTORY_ID_LENGTH))
    matched_by: Mapped[str] = mapped_column(String(32))
    # The normalized Equa address the match was made from: when the user's address changes, resolve again.
    matched_email: Mapped[str] = mapped_column(String(320))
    # Only members the sync itself added may ever be removed by it (and only with removeDeparted on).
    added_by_sync: Mapped[bool] = mapped_column(default=False)


class MicrosoftExclusion(Base):
    """A team member an admin removed from the group: the sync never adds them back until they are allowed again
    (or an admin adds them by hand)."""

    __tablename__ = "microsoft_exclusions"
    __table_args__ = (UniqueConstraint("organization_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    excluded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HandAddedMember(Base):
    """A directory user an admin added to the linked group by hand who is not on the team: the admin chose them,
    so the sync does not flag them."""

    __tablename__ = "microsoft_hand_added_members"
    __table_args__ = (
        UniqueConstraint(
            "organization_id",
            "group_id",
            "directory_id",
            name="uq_microsoft_hand_added_members_org_group_directory",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    group_id: Mapped[str] = mapped_column(String(DIRECTORY_ID_LENGTH))
    directory_id: Mapped[str] = mapped_column(String(DIRECTORY_ID_LENGTH))
    added_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FlagStatus(StrEnum):
    PENDING = "pending"
    INVITED = "invited"
    DISMISSED = "dismissed"


class FlaggedMember(TimestampMixin, Base):
    """A group member who matches no Equa team member: shown to admins, never turned into an account by itself."""

    __tablename__ = "microsoft_flagged_members"
    __table_args__ = (
        UniqueConstraint("organization_id", "directory_id"),
        Index("ix_microsoft_flagged_members_org_status", "organization_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # The group the person was seen in: flags and dismissals shown are those of the linked group only.
    group_id: Mapped[str | None] = mapped_column(String(DIRECTORY_ID_LENGTH), default=None)
    directory_id: Mapped[str] = mapped_column(String(DIRECTORY_ID_LENGTH))
    display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    user_principal_name: Mapped[str | None] = mapped_column(String(320), default=None)
    user_type: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(16), default=FlagStatus.PENDING.value)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"  # the group was unlinked while the run ran: it stopped before its next write


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)


class SyncRun(Base):
    """One reconciliation of an organization's team with its group, from request to final state."""

    __tablename__ = "microsoft_sync_runs"
    __table_args__ = (
        # At most one queued-or-running run per organization, whatever the number of API processes and workers.
        # A partial unique index is understood by both SQLite and PostgreSQL.
        Index(
            "uq_microsoft_sync_runs_one_active",
            "organization_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_microsoft_sync_runs_org_created", "organization_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(16))  # api, web, schedule, cli, push
    dry_run: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED.value)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    group_id: Mapped[str | None] = mapped_column(String(DIRECTORY_ID_LENGTH), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    phase: Mapped[str | None] = mapped_column(String(32), default=None)
    # Outcome name -> number of members with that outcome.
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Graph traffic of the run (requests, batch sub-requests, throttled answers), for operators.
    graph_stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    error_action: Mapped[str | None] = mapped_column(Text, default=None)
    # Times the run was queued again after Microsoft Graph stayed unavailable, and when it next tries (queued).
    requeues: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # A targeted run (trigger push): the Equa user ids whose team change it carries to the group. None: everyone.
    targets: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), default=None)


class Outcome(StrEnum):
    ADDED = "added"
    ALREADY_MEMBER = "alreadyMember"
    REMOVED = "removed"
    EXCLUDED = "excluded"  # an admin removed them from the group: the sync does not add them back
    FLAGGED = "flagged"
    NOT_IN_TENANT = "notInTenant"
    BLOCKED_BY_POLICY = "blockedByPolicy"
    FAILED = "failed"
    CANCELLED = "cancelled"  # not done: the group was unlinked before this change was sent


class SyncOutcome(Base):
    """What a run did (or, in a dry run, would do) for one person."""

    __tablename__ = "microsoft_sync_outcomes"
    __table_args__ = (Index("ix_microsoft_sync_outcomes_run_outcome", "run_id", "outcome"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("microsoft_sync_runs.id", ondelete="CASCADE"))
    # Orders outcomes within a run for stable cursor paging.
    seq: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[str] = mapped_column(String(24))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    directory_id: Mapped[str | None] = mapped_column(String(DIRECTORY_ID_LENGTH), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)


class AuditEvent(Base):
    """A change the system made (or tried to make) in Microsoft 365, or to the link itself."""

    __tablename__ = "microsoft_audit_events"
    __table_args__ = (
        Index("ix_microsoft_audit_events_org_created", "organization_id", "created_at"),
        # EQUA_AUDIT_RETENTION_DAYS deletes by age across organizations.
        Index("ix_microsoft_audit_events_created", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # None when the system acted on its own (scheduled sync, health check).
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    action: Mapped[str] = mapped_column(String(48))  # e.g. group.create, group.link, member.add, sync.run
    target: Mapped[str | None] = mapped_column(String(320), default=None)
    outcome: Mapped[str] = mapped_column(String(16))  # success, failure
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    graph_request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GroupCreation(Base):
    """A create-group request, so that a retried request (same Idempotency-Key) never makes a second group."""

    __tablename__ = "microsoft_group_creations"
    __table_args__ = (UniqueConstraint("organization_id", "idempotency_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    mail_nickname: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[str | None] = mapped_column(String(DIRECTORY_ID_LENGTH), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GrantOrigin(StrEnum):
    OPERATOR = (
        "operator"  # an operator granted an existing group (equa microsoft grant-group, the grants API)
    )
    CREATED = "created"  # create-group made it for this organization


class MicrosoftGroupGrant(Base):
    """A tenant group an organization may link and manage in the `granted` (and administrative-unit) scope.

    One row per group (the unique group_id): a group belongs to at most one organization, so two organizations'
    admins can never manage each other's members.
    """

    __tablename__ = "microsoft_group_grants"
    __table_args__ = (Index("ix_microsoft_group_grants_organization_id", "organization_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # Lower-case GUID text, as Graph writes object ids.
    group_id: Mapped[str] = mapped_column(String(DIRECTORY_ID_LENGTH), unique=True)
    origin: Mapped[str] = mapped_column(String(16))
    # The group's displayName when granted (untrusted text from Microsoft; shown escaped, never trusted).
    group_name: Mapped[str | None] = mapped_column(String(256), default=None)
    granted_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The tenant the group lives in (the organization's connected tenant in multi-tenant mode); None for grants
    # recorded before tenants were.
    # (MS_AUTH_TENANT_ID may name the home tenant by a domain, hence the length.)
    tenant_id: Mapped[str | None] = mapped_column(String(256), default=None)
    # For origin `created`: the create-group attempt that made the group.
    creation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("microsoft_group_creations.id", ondelete="SET NULL"), default=None
    )
