"""Who may call the Microsoft API: every endpoint x every kind of caller, feature on and off, across organizations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from ms_support import Team, link, seed_group_id, tenant_members

from equa.accounts.models import User
from equa.app import create_app
from equa.microsoft.graph.permissions import DEFAULT_SCOPE, permission_names
from equa.settings import Settings

pytestmark = pytest.mark.retry_budget("api")


MEMBER = tenant_members()[25]["id"]
NOBODY = "00000000-0000-4000-8000-000000000001"
# (method, path under /microsoft/, body, the admin's success status)
ENDPOINTS: list[tuple[str, str, Any, int]] = [
    ("GET", "status", None, 200),
    ("POST", "link-group", {"groupId": seed_group_id("marketing")}, 200),
    ("POST", "create-group", {"displayName": "Matrix"}, 201),
    ("DELETE", "unlink-group", None, 204),
    ("GET", "group", None, 200),
    ("GET", "group/members", None, 200),
    ("POST", "group/members", {"userId": MEMBER}, 201),
    ("DELETE", f"group/members/{MEMBER}", None, 204),
    ("GET", "groups", None, 200),
    ("GET", "audit", None, 200),
    ("GET", "exclusions", None, 200),
    # Nobody is excluded: the admin's answer is 404 exclusion_not_found.
    ("DELETE", f"exclusions/{NOBODY}", None, 404),
]
NEEDS_LINK = {"unlink-group", "group", "group/members", f"group/members/{MEMBER}"}
ACTORS = ["anonymous", "bad_token", "other_org_admin", "member", "admin"]
EXPECTED = {"anonymous": 401, "bad_token": 401, "other_org_admin": 404, "member": 403}


def headers_for(team: Team, actor: str) -> dict[str, str]:
    return {
        "anonymous": {},
        "bad_token": {"Authorization": "Bearer equa_not-a-real-token"},
        "other_org_admin": team.outsider_headers,
        "member": team.member_headers,
        "admin": team.admin_headers,
    }[actor]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]} {e[1]}")
async def test_access_with_the_feature_on(
    client: httpx.AsyncClient, team: Team, emu: Any, endpoint: tuple[str, str, Any, int], actor: str
) -> None:
    method, path, body, success = endpoint
    if path in NEEDS_LINK:
        await link(client, team, "empty-team")
    response = await client.request(method, team.url(path), json=body, headers=headers_for(team, actor))
    expected = success if actor == "admin" else EXPECTED[actor]
    assert response.status_code == expected, response.text
    if expected >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_operator_consent_url_is_for_platform_admins_only(
    client: httpx.AsyncClient,
    team: Team,
    make_user: Callable[..., Awaitable[User]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
    emu: Any,
) -> None:
    url = "/api/v1/microsoft/admin-consent-url"
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers=team.admin_headers)).status_code == 403
    operator = await make_user(platform_admin=True)
    response = await client.get(url, headers=await bearer(operator))
    assert response.status_code == 200
    assert response.json()["url"].startswith(f"{emu.base_url}/{emu.tenant_id}/v2.0/adminconsent?")
    assert emu.client_secret not in response.text
    # The permissions to grant come from the one list in code, for the configured group scope.
    assert response.json()["permissions"] == permission_names(DEFAULT_SCOPE)


async def test_operators_named_in_the_setting_read_the_consent_url(
    settings: Settings,
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    named = await make_user("Named-Op@example.com")
    plain = await make_user("not-an-op@example.com")
    application = create_app(settings.model_copy(update={"platform_admins": "named-op@example.com"}))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            url = "/api/v1/microsoft/admin-consent-url"
            assert (await http.get(url, headers=await bearer(named))).status_code == 200
            refused = await http.get(url, headers=await bearer(plain))
            assert refused.status_code == 403
            assert refused.json()["code"] == "platform_admin_required"
    # The same users, on a process where nobody is named: only the stored flag counts there.
    assert (await client.get(url, headers=await bearer(named))).status_code == 403


async def test_organization_b_cannot_reach_organization_a_group_by_any_path(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    group_id = await link(client, team, "empty-team")
    before = emu.group_members(group_id)
    b = team.outsider_headers
    for method, path, body, _ in ENDPOINTS:
        response = await client.request(method, team.url(path), json=body, headers=b)
        assert response.status_code == 404, (path, response.text)
    # Through its own organization: it cannot link A's group, nor see it as linked here.
    own = await client.post(team.url("link-group", team.other_org), json={"groupId": group_id}, headers=b)
    assert own.status_code == 409
    picker = await client.get(team.url("groups", team.other_org), params={"limit": "50"}, headers=b)
    chosen = {g["id"]: g for g in picker.json()["items"]}[group_id]
    assert chosen["linkable"] is False and chosen["linkedHere"] is False
    own_group = await client.get(team.url("group", team.other_org), headers=b)
    assert own_group.status_code == 409  # B has no group; A's is not reachable from B
    assert emu.group_members(group_id) == before


@pytest.fixture
async def client_feature_off(make_settings: Callable[..., Settings], clean_database: str) -> Any:
    application = create_app(make_settings())
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.mark.parametrize("actor", ACTORS)
async def test_everything_is_absent_with_the_feature_off(
    client_feature_off: httpx.AsyncClient, client: httpx.AsyncClient, team: Team, actor: str
) -> None:
    for method, path, body, _ in [*ENDPOINTS, ("GET", "x", None, 0)]:
        response = await client_feature_off.request(
            method, team.url(path), json=body, headers=headers_for(team, actor)
        )
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found"
    consent = await client_feature_off.get(
        "/api/v1/microsoft/admin-consent-url", headers=headers_for(team, actor)
    )
    assert consent.status_code == 404
    spec = (await client_feature_off.get("/openapi.json")).json()
    assert not [p for p in spec["paths"] if "microsoft" in p]


async def test_every_microsoft_response_is_declared_in_openapi(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    mine = {
        f"/api/v1/organizations/{{org_id}}/microsoft/{p}"
        for _, p, _, _ in ENDPOINTS
        if MEMBER not in p and NOBODY not in p
    }
    mine |= {"/api/v1/organizations/{org_id}/microsoft/group/members/{member_id}"}
    mine |= {"/api/v1/organizations/{org_id}/microsoft/exclusions/{user_id}"}
    mine |= {"/api/v1/microsoft/admin-consent-url"}
    assert mine <= set(spec["paths"])
    paths = {p: spec["paths"][p] for p in mine}
    for path, operations in paths.items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            assert {"401", "404"} <= declared, (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/problem+json"]["schema"]
                    # One error schema for the whole service.
                    assert schema["$ref"] == "#/components/schemas/Problem", (method, path, status)
