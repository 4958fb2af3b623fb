"""EQUA_ORG_CREATION: self-service organizations by default, or created by operators only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.organizations.models import Organization
from equa.settings import Settings

MakeUser = Callable[..., Awaitable[User]]
Bearer = Callable[[User], Awaitable[dict[str, str]]]
SignIn = Callable[[User, str], Awaitable[str]]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(org_creation="platform-admins", platform_admins="ops@example.com")


async def _organizations(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Organization)) or 0)


async def test_only_operators_create_organizations_through_the_api(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    bearer: Bearer,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    person = await make_user("person@example.com")
    refused = await client.post("/api/v1/organizations", json={"name": "Mine"}, headers=await bearer(person))
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["code"] == "organization_creation_restricted"
    assert "equa orgs create" in problem["action"]
    assert await _organizations(session_factory) == 0

    for operator in (await make_user("ops@example.com"), await make_user(platform_admin=True)):
        created = await client.post(
            "/api/v1/organizations", json={"name": "Ops"}, headers=await bearer(operator)
        )
        assert created.status_code == 201, created.text
    assert await _organizations(session_factory) == 2


async def test_the_page_offers_no_form_and_refuses_a_forged_post(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    sign_in: SignIn,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    person = await make_user("person@example.com", password="pw-123456")
    csrf = await sign_in(person, "pw-123456")
    page = await client.get("/organizations")
    assert page.status_code == 200
    assert 'action="/organizations"' not in page.text
    assert "created by its operators" in page.text
    forged = await client.post("/organizations", data={"name": "Mine", "csrf_token": csrf})
    assert forged.status_code == 403
    assert "equa orgs create" in forged.text
    assert await _organizations(session_factory) == 0


async def test_the_default_lets_anyone_create_one(
    make_settings: Callable[..., Settings], make_user: MakeUser, bearer: Bearer
) -> None:
    from asgi_lifespan import LifespanManager

    from equa.app import create_app

    application = create_app(make_settings())
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            person = await make_user()
            created = await http.post(
                "/api/v1/organizations", json={"name": "Mine"}, headers=await bearer(person)
            )
            assert created.status_code == 201, created.text
