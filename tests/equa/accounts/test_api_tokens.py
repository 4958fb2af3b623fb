"""API tokens: shown once, stored hashed, usable as Bearer, revocable, private to their owner."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import ApiToken, User

MakeUser = Callable[..., Awaitable[User]]
Bearer = Callable[[User], Awaitable[dict[str, str]]]


async def test_token_lifecycle(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    bearer: Bearer,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    user = await make_user()
    headers = await bearer(user)

    created = await client.post("/api/v1/me/tokens", json={"name": "deploy"}, headers=headers)
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith(created.json()["prefix"])

    async with session_factory() as session:
        stored = await session.scalar(select(ApiToken).where(ApiToken.name == "deploy"))
    assert stored is not None
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(stored)

    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == str(user.id)

    listed = (await client.get("/api/v1/me/tokens", headers=headers)).json()
    assert {t["name"] for t in listed} == {"test", "deploy"}
    assert all("token" not in t for t in listed)
    deploy = next(t for t in listed if t["name"] == "deploy")
    assert deploy["lastUsedAt"] is not None

    revoked = await client.delete(f"/api/v1/me/tokens/{deploy['id']}", headers=headers)
    assert revoked.status_code == 204
    after = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 401
    assert after.json()["code"] == "not_authenticated"


async def test_another_users_token_cannot_be_seen_or_revoked(
    client: httpx.AsyncClient, make_user: MakeUser, bearer: Bearer
) -> None:
    owner, other = await make_user(), await make_user()
    owner_headers = await bearer(owner)
    token_id = (await client.get("/api/v1/me/tokens", headers=owner_headers)).json()[0]["id"]
    other_headers = await bearer(other)
    assert (await client.delete(f"/api/v1/me/tokens/{token_id}", headers=other_headers)).status_code == 404
    assert (await client.get("/api/v1/me", headers=owner_headers)).status_code == 200


async def test_malformed_authorization_headers_are_401(client: httpx.AsyncClient) -> None:
    for value in ["Basic dXNlcjpwdw==", "Bearer", "Bearer equa_notarealtoken", "token"]:
        response = await client.get("/api/v1/me", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"


async def test_many_first_uses_of_fresh_tokens_at_once_all_succeed(
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    api_token_for: Callable[..., Awaitable[str]],
) -> None:
    # More concurrent first uses than the connection pool holds (5 + 10 overflow): each records last_used_at,
    # which must never need a second connection while the request still holds its first.
    tokens = [await api_token_for(await make_user()) for _ in range(24)]

    async def me(token: str) -> int:
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        return response.status_code

    statuses = await asyncio.wait_for(asyncio.gather(*(me(t) for t in tokens)), timeout=20)
    assert statuses == [200] * len(tokens)
