"""Helpers of the Microsoft API tests: the seeded tenant's people, a `Team` (its fixture `team` is in conftest.py)
and `link`. A module marked `retry_budget("api")` gets `settings` with the integration on, pointed at `emu`, so that
`app`, `client`, `session_factory`, `make_user` and `make_org` run with it (tests/conftest.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from emulator_support import default_tenant_users
from emulator_support import seed_group_id as seed_group_id
from equa.accounts.models import User
from equa.organizations.models import Organization

PASSWORD = "correct horse battery staple"


def seed_users() -> list[dict[str, Any]]:
    return default_tenant_users()


def tenant_members() -> list[dict[str, Any]]:
    return [u for u in seed_users() if u["userType"] == "Member"]


def tenant_guests() -> list[dict[str, Any]]:
    return [u for u in seed_users() if u["userType"] == "Guest"]


@dataclass
class Team:
    """An organization whose admin's address is a tenant user's, with a plain member and an outsider."""

    org: Organization
    admin: User
    member: User
    outsider: User  # admin of another organization
    other_org: Organization
    admin_headers: dict[str, str]
    member_headers: dict[str, str]
    outsider_headers: dict[str, str]

    def url(self, path: str, org: Organization | None = None) -> str:
        return f"/api/v1/organizations/{(org or self.org).id}/microsoft/{path}"


async def link(client: httpx.AsyncClient, team: Team, key: str = "engineering") -> str:
    group_id = seed_group_id(key)
    response = await client.post(
        team.url("link-group"), json={"groupId": group_id}, headers=team.admin_headers
    )
    assert response.status_code == 200, response.text
    return group_id
