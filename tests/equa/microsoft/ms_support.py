"""Fixtures of the Microsoft API tests: one HTTPS emulator per test session, the app pointed at it, callers.

Import the fixtures a module needs from here (`from ms_support import ...`); `settings` here overrides the suite's
so that `app`, `client`, `session_factory`, `make_user` and `make_org` all run with the integration turned on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from emulator_support import default_tenant_users, fresh_emulator, integration_settings, running_emulator
from emulator_support import seed_group_id as seed_group_id
from equa.accounts.models import User
from equa.organizations.models import Organization
from equa.settings import Settings

PASSWORD = "correct horse battery staple"


def seed_users() -> list[dict[str, Any]]:
    return default_tenant_users()


def tenant_members() -> list[dict[str, Any]]:
    return [u for u in seed_users() if u["userType"] == "Member"]


def tenant_guests() -> list[dict[str, Any]]:
    return [u for u in seed_users() if u["userType"] == "Guest"]


@pytest.fixture(scope="session")
def ms_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from running_emulator(tmp_path_factory, "ms-emulator")


@pytest.fixture
def emu(ms_emulator: Any) -> Iterator[Any]:
    """The emulator on its default tenant, without faults, statistics zeroed."""
    yield from fresh_emulator(ms_emulator)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], emu: Any) -> Settings:
    return integration_settings(
        make_settings,
        emu,
        graph_max_attempts=5,
        graph_max_retry_wait_seconds=4.0,
        graph_timeout_seconds=10.0,
        status_cache_seconds=60.0,
    )


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


@pytest.fixture
async def team(
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> Team:
    people = tenant_members()
    admin = await make_user(people[0]["mail"], password=PASSWORD)
    member = await make_user(people[1]["mail"])
    outsider = await make_user()
    org = await make_org(admin, name="Contoso team", members=[member])
    other_org = await make_org(outsider, name="Other team")
    return Team(
        org,
        admin,
        member,
        outsider,
        other_org,
        await bearer(admin),
        await bearer(member),
        await bearer(outsider),
    )


async def link(client: httpx.AsyncClient, team: Team, key: str = "engineering") -> str:
    group_id = seed_group_id(key)
    response = await client.post(
        team.url("link-group"), json={"groupId": group_id}, headers=team.admin_headers
    )
    assert response.status_code == 200, response.text
    return group_id
