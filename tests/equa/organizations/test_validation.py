"""Bad input gets a 4xx that names the field, and nothing is written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import ApiToken, User
from equa.organizations.models import Membership, Organization

MakeUser = Callable[..., Awaitable[User]]
MakeOrg = Callable[..., Awaitable[Organization]]
Bearer = Callable[[User], Awaitable[dict[str, str]]]


async def _row_counts(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with session_factory() as session:
        return {
            model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (User, ApiToken, Organization, Membership)
        }


ORG_BODIES: list[tuple[Any, str]] = [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 10_000}, "name"),
    ({"name": 42}, "name"),
    ({"name": None}, "name"),
    ({}, "name"),
    ({"name": "ok", "unexpected": 1}, "unexpected"),
    (["name"], "request"),
]

MEMBER_BODIES: list[tuple[Any, str]] = [
    ({"email": "not-an-address", "role": "member"}, "email"),
    ({"email": "", "role": "member"}, "email"),
    ({"email": 7, "role": "member"}, "email"),
    ({"email": "a@example.com", "role": "owner"}, "role"),
    ({"email": "a@example.com", "role": 1}, "role"),
    ({"email": "a@example.com", "displayName": "", "role": "member"}, "displayName"),
    ({"email": "a@example.com", "displayName": "y" * 10_000, "role": "member"}, "displayName"),
    ({"role": "member"}, "email"),
]


@pytest.mark.parametrize(("body", "field"), ORG_BODIES)
async def test_bad_organization_bodies(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    bearer: Bearer,
    session_factory: async_sessionmaker[AsyncSession],
    body: Any,
    field: str,
) -> None:
    headers = await bearer(await make_user())
    before = await _row_counts(session_factory)
    response = await client.post("/api/v1/organizations", json=body, headers=headers)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert field in [e["field"] for e in problem["errors"]]
    assert problem["detail"].startswith(problem["errors"][0]["field"])
    assert await _row_counts(session_factory) == before


@pytest.mark.parametrize(("body", "field"), MEMBER_BODIES)
async def test_bad_member_bodies(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    make_org: MakeOrg,
    bearer: Bearer,
    session_factory: async_sessionmaker[AsyncSession],
    body: Any,
    field: str,
) -> None:
    admin = await make_user()
    org = await make_org(admin)
    headers = await bearer(admin)
    before = await _row_counts(session_factory)
    response = await client.post(f"/api/v1/organizations/{org.id}/members", json=body, headers=headers)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]
    assert await _row_counts(session_factory) == before


async def test_malformed_ids_name_the_parameter(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer
) -> None:
    admin = await make_user()
    org = await make_org(admin)
    headers = await bearer(admin)
    bad_org = await client.get("/api/v1/organizations/not-a-uuid", headers=headers)
    assert bad_org.status_code == 422
    assert bad_org.json()["errors"][0]["field"] == "org_id"
    bad_user = await client.patch(
        f"/api/v1/organizations/{org.id}/members/12345", json={"role": "admin"}, headers=headers
    )
    assert bad_user.status_code == 422
    assert bad_user.json()["errors"][0]["field"] == "user_id"
    bad_token = await client.delete("/api/v1/me/tokens/xyz", headers=headers)
    assert bad_token.status_code == 422
    assert bad_token.json()["errors"][0]["field"] == "token_id"


async def test_invalid_json_is_422(client: httpx.AsyncClient, make_user: MakeUser, bearer: Bearer) -> None:
    headers = await bearer(await make_user())
    response = await client.post(
        "/api/v1/organizations", content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
