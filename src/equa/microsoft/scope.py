"""Which Microsoft 365 groups an organization may reach: MS_GROUP_SCOPE, checked before every Graph call on a group.

The app holds tenant-wide rights over groups (Group.ReadWrite.All); an organization admin is a stranger to the
tenant (ARCHITECTURE rule 9). Without this check, anyone able to create an organization could link any group of the
tenant (a VPN or finance security group) and add or remove its members with the app's rights. The operator chooses
how far the app's rights are lent:

- `granted` (default): groups create-group made for the organization, and groups an operator granted to it.
- `administrative-unit:<id>`: those, and every group that is a member of that Microsoft Entra administrative unit
  (the tenant's administrators decide what is in it).
- `tenant`: any group of the tenant (explicit opt-in; start-up warns).

In every mode a group recorded for one organization (granted or created there) is out of reach of every other.
Nothing the caller sends widens the scope: the check reads only this table and, in the unit mode, Graph.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from equa.db.session import release_connection
from equa.errors import AppError
from equa.microsoft import repository
from equa.microsoft.graph import GraphClient, GraphNotFound
from equa.microsoft.models import MicrosoftGroupGrant
from equa.settings import GroupScopeMode, Settings

log = logging.getLogger("equa.microsoft.scope")

TENANT_WARNING = (
    "MS_GROUP_SCOPE=tenant: every organization admin may link and manage ANY group of the Microsoft 365 tenant "
    "with this app's rights (security groups that grant access included). This lends the app's rights over every "
    "group to every organization admin; use `granted` or `administrative-unit:<id>` unless every organization "
    "admin is trusted by the tenant (docs/security.md)."
)


def grant_command(organization_id: uuid.UUID | str, group_id: uuid.UUID | str) -> str:
    return f"equa microsoft grant-group {organization_id} {group_id}"


def out_of_scope(scope: GroupScope, organization_id: uuid.UUID, group_id: uuid.UUID | str) -> AppError:
    """403: the organization may not use this group. Says nothing about whether the group exists."""
    command = grant_command(organization_id, group_id)
    if scope.mode is GroupScopeMode.ADMINISTRATIVE_UNIT:
        message = (
            f"Group {group_id} is outside the groups this organization may use: it was not created here, not "
            "granted to this organization by an operator, and not in the administrative unit this service manages."
        )
        action = (
            "Ask a tenant administrator to add it to the administrative unit, or ask an operator to grant it: "
            f"{command}"
        )
    else:
        message = (
            f"Group {group_id} is outside the groups this organization may use: only groups created here and "
            "groups an operator granted to this organization can be linked or managed."
        )
        action = f"Ask an operator to grant it: {command}"
    return AppError(
        403,
        "microsoft_group_out_of_scope",
        message,
        action,
        extra={"groupId": str(group_id), "scope": scope.mode.value},
    )


def granted_elsewhere() -> AppError:
    # Deliberately does not say which organization: that would leak another customer's name.
    return AppError(
        409,
        "microsoft_group_granted_elsewhere",
        "This group belongs to another Equa organization (granted to it or created there); one group cannot "
        "serve two organizations.",
        "Choose another group, or create a new one for this organization.",
    )


def normalize_group_id(group_id: uuid.UUID | str) -> str:
    """The lower-case GUID text under which grants are stored (ValueError for anything else)."""
    return str(uuid.UUID(str(group_id)))


async def grant_of(session: AsyncSession, group_id: uuid.UUID | str) -> MicrosoftGroupGrant | None:
    """The grant (or creation record) of a group, whichever organization holds it."""
    return await repository.grant_by_group(session, normalize_group_id(group_id))


async def granted_group_ids(session: AsyncSession, organization_id: uuid.UUID) -> list[str]:
    """The organization's granted and created groups, oldest grant first."""
    return await repository.granted_group_ids(session, organization_id)


@dataclass(frozen=True)
class GroupScope:
    """MS_GROUP_SCOPE as a policy: may this organization reach this group, and which groups does it list."""

    mode: GroupScopeMode
    unit_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GroupScope:
        return cls(settings.group_scope_mode, settings.group_scope_unit)

    @property
    def tenant_wide(self) -> bool:
        return self.mode is GroupScopeMode.TENANT

    def describe(self) -> str:
        """Which groups an organization can link, in the words the settings page uses."""
        if self.mode is GroupScopeMode.TENANT:
            return "Any group of the Microsoft 365 tenant that is not used by another organization."
        if self.mode is GroupScopeMode.ADMINISTRATIVE_UNIT:
            return (
                "Groups created here, groups an operator granted to this organization, and groups in the "
                "administrative unit this service manages."
            )
        return "Groups created here, and groups an operator granted to this organization."

    def unit_members_path(self) -> str:
        """Graph path of the unit's groups (the cast keeps users and devices out)."""
        return f"directory/administrativeUnits/{self.unit_id}/members/microsoft.graph.group"

    async def unit_holds(self, graph: GraphClient, group_id: str) -> bool:
        """Whether the administrative unit has this group among its members (asked of Graph every time).

        One request whatever the unit's size (`GET .../members/{id}`: 404 when the object is not in the unit),
        rather than reading the unit's member list page by page before every operation on the group.
        """
        if self.unit_id is None:
            return False
        try:
            response = await graph.get(
                f"directory/administrativeUnits/{self.unit_id}/members/{group_id}", params={"$select": "id"}
            )
        except GraphNotFound:
            return False
        member: dict[str, Any] = response.json() or {}
        # A user or device with this id is not a group of the unit (ids are unique, but say so anyway).
        return str(member.get("@odata.type", "")).lower() == "#microsoft.graph.group" and (
            str(member.get("id", "")).lower() == group_id.lower()
        )

    async def check(
        self,
        session: AsyncSession,
        graph: GraphClient,
        organization_id: uuid.UUID,
        group_id: uuid.UUID | str,
    ) -> None:
        """Return when `organization_id` may link and manage `group_id`; raise AppError otherwise.

        409 microsoft_group_granted_elsewhere when another organization holds the group (every mode); 403
        microsoft_group_out_of_scope when the mode does not reach it. Checked before Graph is asked anything about
        the group, so an out-of-scope caller learns nothing of it, not even whether it exists.
        """
        try:
            key = normalize_group_id(group_id)
        except ValueError:
            raise out_of_scope(self, organization_id, group_id) from None
        grant = await grant_of(session, key)
        # Graph may be asked next (the unit, then the caller's own call): the read is over, give the connection back.
        await release_connection(session)
        if grant is not None:
            if grant.organization_id == organization_id:
                return
            raise granted_elsewhere()
        if self.mode is GroupScopeMode.TENANT:
            return
        if self.mode is GroupScopeMode.ADMINISTRATIVE_UNIT and await self.unit_holds(graph, key):
            return
        log.info(
            "organization %s: group %s refused (outside MS_GROUP_SCOPE=%s)", organization_id, key, self.mode
        )
        raise out_of_scope(self, organization_id, key)

    async def allows(
        self,
        session: AsyncSession,
        graph: GraphClient,
        organization_id: uuid.UUID,
        group_id: uuid.UUID | str,
    ) -> bool:
        try:
            await self.check(session, graph, organization_id, group_id)
        except AppError:
            return False
        return True


def log_scope_at_start_up(settings: Settings) -> None:
    """One line naming the scope; a warning in tenant mode, which lends the app's rights to every org admin."""
    scope = GroupScope.from_settings(settings)
    if scope.tenant_wide and settings.multi_tenant:
        log.info("MS_GROUP_SCOPE: any group of the tenant each organization connected (its admin consented)")
    elif scope.tenant_wide:
        log.warning(TENANT_WARNING)
    elif scope.mode is GroupScopeMode.ADMINISTRATIVE_UNIT:
        log.info(
            "MS_GROUP_SCOPE: created and granted groups, and groups of administrative unit %s", scope.unit_id
        )
    else:
        log.info("MS_GROUP_SCOPE: created and granted groups only")
