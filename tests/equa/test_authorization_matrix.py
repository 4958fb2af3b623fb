"""Every endpoint, called by every kind of caller, answers with the status its access rule implies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from equa.accounts.models import User
from equa.organizations.models import Organization


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    access: str  # "public", "user" (anyone signed in), "member" or "admin" of the organization
    success: int
    body: Any = None


ENDPOINTS = [
    Endpoint("DELETE", "/api/v1/session", "public", 204),
    Endpoint("GET", "/api/v1/me", "user", 200),
    Endpoint("GET", "/api/v1/me/tokens", "user", 200),
    Endpoint("POST", "/api/v1/me/tokens", "user", 201, {"name": "matrix"}),
    Endpoint("DELETE", "/api/v1/me/tokens/{own_token}", "user", 204),
    Endpoint("GET", "/api/v1/organizations", "user", 200),
    Endpoint("POST", "/api/v1/organizations", "user", 201, {"name": "Matrix"}),
    Endpoint("GET", "/api/v1/organizations/{org}", "member", 200),
    Endpoint("GET", "/api/v1/organizations/{org}/members", "member", 200),
    Endpoint("POST", "/api/v1/organizations/{org}/members", "admin", 201, {"email": "new@example.com"}),
    Endpoint("PATCH", "/api/v1/organizations/{org}/members/{target}", "admin", 200, {"role": "admin"}),
    Endpoint("DELETE", "/api/v1/organizations/{org}/members/{target}", "admin", 204),
]

ACTORS = ["anonymous", "bad_token", "other_org_user", "member", "admin"]


def expected_status(endpoint: Endpoint, actor: str) -> int:
    if endpoint.access == "public":
        return endpoint.success
    if actor in ("anonymous", "bad_token"):
        return 401
    if endpoint.access == "user":
        return endpoint.success
    if actor == "other_org_user":
        return 404  # indistinguishable from an organization that does not exist
    if endpoint.access == "admin" and actor == "member":
        return 403
    return endpoint.success


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_access(
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
    endpoint: Endpoint,
    actor: str,
) -> None:
    admin, member, target, outsider = [await make_user() for _ in range(4)]
    org = await make_org(admin, members=[member, target])
    await make_org(outsider)  # the outsider is an admin elsewhere, which must not help here

    callers: dict[str, User | None] = {
        "anonymous": None,
        "bad_token": None,
        "other_org_user": outsider,
        "member": member,
        "admin": admin,
    }
    caller = callers[actor]
    headers: dict[str, str] = {}
    if caller is not None:
        headers = await bearer(caller)
    elif actor == "bad_token":
        headers = {"Authorization": "Bearer equa_this-token-was-never-issued-000000"}

    own_token = "00000000-0000-0000-0000-000000000000"
    if caller is not None:
        tokens = (await client.get("/api/v1/me/tokens", headers=headers)).json()
        own_token = tokens[0]["id"]

    path = endpoint.path.format(org=org.id, target=target.id, own_token=own_token)
    response = await client.request(endpoint.method, path, json=endpoint.body, headers=headers)
    assert response.status_code == expected_status(endpoint, actor), response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == "Bearer"
