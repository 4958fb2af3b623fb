"""MS_GROUP_SCOPE=tenant: today's behaviour (any tenant group), a warning at start-up; hidden membership refused."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from ms_support import Team, seed_group_id

from equa.settings import Settings


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    return emulator_settings("api", tenant_wide=True, status_cache_seconds=0)


async def test_any_tenant_group_links_and_start_up_warns(
    caplog: pytest.LogCaptureFixture, client: httpx.AsyncClient, team: Team
) -> None:
    warnings = [
        r.getMessage()
        for r in caplog.get_records("setup")
        if r.name == "equa.microsoft.scope" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert "MS_GROUP_SCOPE=tenant" in warnings[0]
    assert "every organization admin" in warnings[0]

    picker = (await client.get(team.url("groups"), headers=team.admin_headers)).json()["items"]
    assert "VPN Users" in {item["displayName"] for item in picker}
    vpn = seed_group_id("security")
    linked = await client.post(team.url("link-group"), json={"groupId": vpn}, headers=team.admin_headers)
    assert linked.status_code == 200, linked.text
    assert (await client.get(team.url("group/members"), headers=team.admin_headers)).status_code == 200


async def test_hidden_membership_is_refused_with_its_reason(client: httpx.AsyncClient, team: Team) -> None:
    hidden = seed_group_id("leadership-council")
    picker = (await client.get(team.url("groups"), headers=team.admin_headers)).json()["items"]
    council = next(item for item in picker if item["id"] == hidden)
    assert council["linkable"] is False and council["reasonCode"] == "hidden_membership"
    response = await client.post(team.url("link-group"), json={"groupId": hidden}, headers=team.admin_headers)
    assert response.status_code == 422
    assert response.json()["code"] == "microsoft_group_unlinkable"
    assert response.json()["reason"] == "hidden_membership"


async def test_a_group_granted_to_one_organization_cannot_be_linked_by_another(
    client: httpx.AsyncClient, team: Team, make_user: Any, bearer: Any
) -> None:
    operator = await bearer(await make_user(platform_admin=True))
    marketing = seed_group_id("marketing")
    granted = await client.post(
        "/api/v1/microsoft/grants",
        json={"organizationId": str(team.other_org.id), "groupId": marketing},
        headers=operator,
    )
    assert granted.status_code == 201, granted.text
    response = await client.post(
        team.url("link-group"), json={"groupId": marketing}, headers=team.admin_headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "microsoft_group_granted_elsewhere"
