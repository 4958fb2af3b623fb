"""The fleet as the bench knows it: which organization is linked to which group of which tenant, and who is who."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass
class FleetOrg:
    """One organization, linked to one group of one tenant, and its team (Equa user ids)."""

    id: uuid.UUID
    tenant_id: str
    group_id: str
    team: set[uuid.UUID] = field(default_factory=set)


@dataclass
class FleetModel:
    """Organizations, and the two-way map between Equa users and the tenants' directory users (by address)."""

    orgs: list[FleetOrg]
    user_of_directory: dict[str, uuid.UUID]  # directory id -> Equa user id
    directory_of_user: dict[uuid.UUID, str]
    email_of_user: dict[uuid.UUID, str]
    users_of_tenant: dict[str, list[str]]  # tenant id -> its directory user ids
    memberships: int = 0  # Microsoft-side memberships of the linked groups at the start

    def tenants(self) -> dict[str, list[FleetOrg]]:
        by_tenant: dict[str, list[FleetOrg]] = {}
        for org in self.orgs:
            by_tenant.setdefault(org.tenant_id, []).append(org)
        return by_tenant
