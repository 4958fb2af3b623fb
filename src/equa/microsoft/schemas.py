"""Request and response bodies of the Microsoft 365 API (camelCase JSON, like Graph and the original web client)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import EmailStr, Field, StringConstraints, model_validator

from equa import errors
from equa.accounts.schemas import CamelModel

# Microsoft's limits for a group: displayName up to 256 characters, description up to 1024, mailNickname 64.
GroupDisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
GroupDescription = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1024)]
MailNickname = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

Health = Literal["ok", "group_missing", "permission_missing", "auth_failed", "unreachable", "out_of_scope"]


class LinkGroupIn(CamelModel):
    group_id: uuid.UUID = Field(description="The Microsoft 365 group's object id (a GUID).")


class CreateGroupIn(CamelModel):
    display_name: GroupDisplayName
    description: GroupDescription | None = None
    mail_nickname: MailNickname | None = Field(
        None,
        description="The group's email alias. Derived from displayName when absent; an explicit one that is "
        "taken answers 409, a derived one that is taken gets a numeric suffix.",
    )


class AddMemberIn(CamelModel):
    """One of userId (directory object id), email, equaUserId (a member of this organization); or equaUserId with
    userId, to say which directory account is that member's (later syncs use it)."""

    user_id: uuid.UUID | None = None
    email: EmailStr | None = None
    equa_user_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AddMemberIn:
        given = [v for v in (self.user_id, self.email, self.equa_user_id) if v is not None]
        together = self.user_id is not None and self.equa_user_id is not None and self.email is None
        if len(given) != 1 and not together:
            raise ValueError("send one of userId, email or equaUserId, or equaUserId with userId")
        return self


class GroupSummaryOut(CamelModel):
    display_name: str | None
    description: str | None
    member_count: int | None


class LastSyncOut(CamelModel):
    id: uuid.UUID
    status: str
    trigger: str
    dry_run: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, Any]
    error_code: str | None
    error_message: str | None


class StatusOut(CamelModel):
    enabled: bool
    linked: bool
    group_id: uuid.UUID | None
    group: GroupSummaryOut | None
    last_sync: LastSyncOut | None
    # The last preview (dry run), apart from lastSync, which is the last real sync.
    last_preview: LastSyncOut | None = None
    health: Health
    action: str | None
    admin_consent_url: str | None
    stale: bool = Field(
        description="True when Microsoft 365 did not answer in time and the summary shown is an older one."
    )
    age_seconds: float | None = Field(description="How old the Microsoft 365 part of this answer is.")
    checked_at: datetime | None
    tenant_id: str | None = Field(
        None, description="The Microsoft 365 tenant the organization's group lives in."
    )
    tenant_name: str | None = Field(None, description="Its display name (multi-tenant mode, when connected).")
    tenant_domain: str | None = Field(None, description="Its default verified domain (multi-tenant mode).")
    connection: Literal["connected", "not_connected", "consent_revoked"] = Field(
        "connected",
        description="Multi-tenant mode: whether the organization's tenant is connected; `action` says what to do "
        "when it is not (always `connected` in single-tenant mode).",
    )


class CapabilitiesOut(CamelModel):
    manage_members: bool
    sync: bool
    reason: str | None
    action: str | None


class GroupOut(CamelModel):
    id: uuid.UUID
    display_name: str | None
    description: str | None
    mail: str | None
    mail_nickname: str | None
    visibility: str | None
    group_types: list[str]
    member_count: int | None
    created_date_time: datetime | None
    capabilities: CapabilitiesOut


class GroupMemberOut(CamelModel):
    id: str
    object_type: str
    display_name: str | None
    mail: str | None
    user_principal_name: str | None
    user_type: str | None
    equa_user_id: uuid.UUID | None


class GroupMembersPageOut(CamelModel):
    items: list[GroupMemberOut]
    next_cursor: str | None


class MemberChangeOut(CamelModel):
    member: GroupMemberOut
    added: bool = Field(description="False when the user already was a member (nothing changed).")


class GroupChoiceOut(CamelModel):
    id: uuid.UUID
    display_name: str | None
    description: str | None
    mail: str | None
    group_types: list[str]
    linkable: bool
    reason_code: str | None
    reason: str | None
    action: str | None
    linked_here: bool


class GroupSearchPageOut(CamelModel):
    items: list[GroupChoiceOut]
    next_cursor: str | None


class AuditEventOut(CamelModel):
    id: uuid.UUID
    created_at: datetime
    actor_user_id: uuid.UUID | None
    action: str
    target: str | None
    outcome: str
    detail: str | None
    graph_request_id: str | None


class AuditPageOut(CamelModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class GrantIn(CamelModel):
    organization_id: uuid.UUID = Field(
        description="The Equa organization that may link and manage the group."
    )
    group_id: uuid.UUID = Field(description="The Microsoft 365 group's object id (a GUID).")


class GrantOut(CamelModel):
    organization_id: uuid.UUID
    group_id: uuid.UUID
    origin: Literal["operator", "created"] = Field(
        description="operator: granted by an operator; created: create-group made it for the organization."
    )
    group_name: str | None = Field(description="The group's displayName when it was granted or created.")
    granted_by: uuid.UUID | None
    granted_at: datetime
    linked: bool = Field(description="The organization has this group linked now.")
    tenant_id: str | None = Field(
        None, description="The Microsoft 365 tenant the group lives in (null: recorded before tenants were)."
    )


class GrantListOut(CamelModel):
    items: list[GrantOut]


class GrantRevokedOut(CamelModel):
    organization_id: uuid.UUID
    group_id: uuid.UUID
    unlinked: bool = Field(
        description="The group was linked and has been unlinked (it stays in Microsoft 365)."
    )


class AdminConsentOut(CamelModel):
    url: str | None
    tenant_id: str | None
    client_id: str | None
    permissions: list[str]


# What each status means on the Microsoft endpoints, for the OpenAPI document.
_MICROSOFT_STATUS_MEANINGS = {
    "s401": "Not signed in",
    "s403": "Not an admin of this organization, or the group is outside the groups it may use",
    "s404": "No such organization (or not a member), feature disabled, or not found in Microsoft 365",
    "s409": "Conflict with the current link",
    "s422": "Invalid input, or a group Microsoft Graph cannot manage",
    "s429": "Too many groups created today (EQUA_GROUP_CREATE_LIMIT); see Retry-After",
    "s502": "Microsoft 365 refused the app (permission, sign-in)",
    "s503": "Microsoft 365 is throttling or unavailable; see Retry-After",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The service-wide problem+json declarations, with what each status means on the Microsoft endpoints."""
    return errors.problem_responses(*statuses, **_MICROSOFT_STATUS_MEANINGS)


class ExclusionOut(CamelModel):
    user_id: uuid.UUID
    email: str
    display_name: str | None
    excluded_at: datetime
    excluded_by: uuid.UUID | None = Field(description="The admin who removed them from the group.")


class ExclusionPageOut(CamelModel):
    items: list[ExclusionOut] = Field(
        description="Team members an admin removed from the group, newest first: the sync does not add them back."
    )
    next_cursor: str | None
