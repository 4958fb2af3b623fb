"""Fixtures of the Microsoft API tests (helpers are in ms_support.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from ms_support import PASSWORD, Team, tenant_members

from equa.accounts.models import User
from equa.organizations.models import Organization


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
