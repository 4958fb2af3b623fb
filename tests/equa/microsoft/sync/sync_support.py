"""Helpers of the sync tests: tenants built to order on the emulator (`emu`), teams bulk-inserted.

A module marked `retry_budget("sync")` gets `settings` with the integration on, pointed at `emu`, so that `app`,
`client`, `session_factory`, `make_user` and `make_org` run with it (tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.organizations.models import Membership, Organization, Role

DOMAIN = "contoso.onmicrosoft.com"  # the emulator's default tenant


def directory_user(index: int, *, guest: bool = False, prefix: str = "person") -> dict[str, Any]:
    nickname = f"{prefix}{index}"
    if guest:
        mail = f"{nickname}@partner.example"
        upn = f"{nickname}_partner.example#EXT#@{DOMAIN}"
    else:
        mail = f"{nickname}@{DOMAIN}"
        upn = mail
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sync-test/{prefix}/{index}")),
        "displayName": f"Person {index}",
        "mail": mail,
        "mailNickname": nickname,
        "userPrincipalName": upn,
        "userType": "Guest" if guest else "Member",
        "accountEnabled": True,
        "proxyAddresses": [f"SMTP:{mail}"],
    }


@dataclass
class Tenant:
    users: list[dict[str, Any]]
    group_id: str
    owners: list[str] = field(default_factory=list)

    def by_mail(self, mail: str) -> dict[str, Any]:
        return next(u for u in self.users if u["mail"] == mail)


def load_tenant(
    emu: Any,
    users: Sequence[dict[str, Any]],
    *,
    members: Sequence[str] = (),
    owners: Sequence[str] = (),
    allow_guests: bool = True,
) -> Tenant:
    """Replace the emulator's tenant with these users and one Microsoft 365 group (members/owners by id)."""
    from graph_emulator import seeds

    group_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "sync-test/group"))
    group = {
        "id": group_id,
        "displayName": "Sync test team",
        "description": "Group kept in step with an Equa team",
        "groupTypes": ["Unified"],
        "mailEnabled": True,
        "securityEnabled": False,
        "mailNickname": "sync-test-team",
        "visibility": "Private",
        "members": list(members),
        "owners": list(owners),
    }
    seed = {
        "tenants": [
            {
                "id": emu.tenant_id,
                "domain": emu.tenant_domain,
                "displayName": "Contoso",
                "size": seeds.size_for(len(users)),
                "apps": seeds.default_apps(),
                "users": list(users),
                "groups": [group],
            }
        ]
    }
    emu.reset(seed)
    emu.set_tenant_policy(allow_guests_in_groups=allow_guests)
    emu.reset_stats()
    return Tenant(list(users), group_id, list(owners))


async def make_team(
    session_factory: async_sessionmaker[AsyncSession],
    emails: Sequence[str],
    *,
    group_id: str | None,
    admin_email: str | None = None,
    remove_departed: bool = False,
    auto_sync: bool = False,
) -> tuple[Organization, User, list[User]]:
    """An organization (first address is its admin) with these members, linked to the group; bulk-inserted."""
    from equa.accounts.models import normalize_email

    async with session_factory() as session:
        admin_address = admin_email or f"admin-{uuid.uuid4().hex[:8]}@equa.example"
        admin = User(
            email=admin_address, email_normalized=normalize_email(admin_address), display_name="Admin"
        )
        users = [
            User(email=e, email_normalized=normalize_email(e), display_name=e.split("@")[0]) for e in emails
        ]
        session.add_all([admin, *users])
        await session.flush()
        organization = Organization(
            name=f"Org {uuid.uuid4().hex[:6]}",
            microsoft_group=uuid.UUID(group_id) if group_id else None,
            # Linked just now, as link-group would: a new group's 404 is replication lag, not a deletion.
            microsoft_group_linked_at=utcnow() if group_id else None,
            microsoft_remove_departed=remove_departed,
            microsoft_auto_sync=auto_sync,
        )
        session.add(organization)
        await session.flush()
        session.add(Membership(organization_id=organization.id, user_id=admin.id, role=Role.ADMIN))
        session.add_all(
            [Membership(organization_id=organization.id, user_id=u.id, role=Role.MEMBER) for u in users]
        )
        await session.commit()
        return organization, admin, users


BearerFactory = Callable[[User], Awaitable[dict[str, str]]]
