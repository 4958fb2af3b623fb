"""Equa's side of the fleet, written in bulk (Core inserts): an organization per emulator group, its tenant
connection, and a team made of the group's members plus a few people not in the group yet (the first reconcile
adds them). Every directory user of a tenant gets an Equa account with the same address."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from fleet_support.model import FleetModel, FleetOrg

CHUNK = 5_000
NEW_TEAM_SHARE = 0.05  # of a group's size: team members the group lacks before the first reconcile


def plan_fleet(emulator: Any, seed: int = 11) -> FleetModel:
    """Read the generated fleet straight from the emulator's directory (same process, before any traffic)."""
    rng = random.Random(seed)
    directory = emulator.directory
    layout = directory.fleet
    orgs: list[FleetOrg] = []
    user_of_directory: dict[str, uuid.UUID] = {}
    email_of_user: dict[uuid.UUID, str] = {}
    users_of_tenant: dict[str, list[str]] = {}
    memberships = 0
    for tenant_layout in layout["tenants"]:
        tenant = directory.tenants[tenant_layout["id"]]
        users_of_tenant[tenant.id] = list(tenant.users)
        for directory_id, user in tenant.users.items():
            user_id = uuid.uuid5(uuid.NAMESPACE_URL, f"fleet-bench/{directory_id}")
            user_of_directory[directory_id] = user_id
            email_of_user[user_id] = str(user["mail"]).lower()
        for group in tenant_layout["groups"]:
            members = set(tenant.members[group["id"]].ordered())
            memberships += len(members)
            outside = [u for u in users_of_tenant[tenant.id] if u not in members]
            extra = rng.sample(outside, min(len(outside), max(1, round(NEW_TEAM_SHARE * len(members)))))
            team = {user_of_directory[d] for d in members} | {user_of_directory[d] for d in extra}
            orgs.append(FleetOrg(uuid.uuid4(), tenant.id, group["id"], team))
    directory_of_user = {user: directory_id for directory_id, user in user_of_directory.items()}
    return FleetModel(orgs, user_of_directory, directory_of_user, email_of_user, users_of_tenant, memberships)


async def seed_database(url: str, model: FleetModel, tenant_names: dict[str, tuple[str, str]]) -> None:
    """Migrate the empty database at `url`, then insert users, organizations, connections and teams."""
    from equa.accounts.models import User
    from equa.db.base import utcnow
    from equa.db.engine import create_engine_for
    from equa.db.migrate import upgrade_database_async
    from equa.db.models_registry import import_all_models
    from equa.microsoft.tenants.models import TenantConnection
    from equa.organizations.models import Membership, Organization, Role

    import_all_models()
    await upgrade_database_async(url)
    engine = create_engine_for(url)
    linked_at = utcnow() - timedelta(days=1)
    users = [
        {"id": user_id, "email": email, "email_normalized": email, "display_name": email.split("@")[0]}
        for user_id, email in model.email_of_user.items()
    ]
    organizations = [
        {
            "id": org.id,
            "name": f"Fleet organization {index}",
            "microsoft_group": uuid.UUID(org.group_id),
            "microsoft_group_linked_at": linked_at,
            "microsoft_auto_sync": True,
            "microsoft_remove_departed": True,
        }
        for index, org in enumerate(model.orgs)
    ]
    connections = [
        {
            "organization_id": org.id,
            "tenant_id": org.tenant_id,
            "tenant_name": tenant_names[org.tenant_id][0],
            "tenant_domain": tenant_names[org.tenant_id][1],
            "state": "connected",
        }
        for org in model.orgs
    ]
    memberships = [
        {"id": uuid.uuid4(), "organization_id": org.id, "user_id": user_id, "role": Role.MEMBER}
        for org in model.orgs
        for user_id in sorted(org.team)
    ]
    try:
        for table, rows in (
            (User, users),
            (Organization, organizations),
            (TenantConnection, connections),
            (Membership, memberships),
        ):
            for start in range(0, len(rows), CHUNK):
                async with engine.begin() as connection:
                    await connection.execute(insert(table), rows[start : start + CHUNK])
    finally:
        await engine.dispose()
