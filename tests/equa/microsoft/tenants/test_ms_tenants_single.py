"""Single-tenant mode (the default) is unchanged: one tenant for every organization, nothing to connect."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ms_support import Team

pytestmark = pytest.mark.retry_budget("api")


async def test_the_status_names_the_one_tenant_and_there_is_nothing_to_connect(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    status = (await client.get(team.url("status"), headers=team.admin_headers)).json()
    assert status["connection"] == "connected"
    assert status["tenantId"] == emu.tenant_id
    for method, path in (("POST", "connect"), ("DELETE", "connection"), ("GET", "connection")):
        response = await client.request(method, team.url(path), headers=team.admin_headers)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "microsoft_single_tenant"
        assert "MS_AUTH_TENANT_ID=organizations" in response.json()["action"]
    callback = await client.get("/microsoft/consent-callback?state=x&tenant=y")
    assert callback.status_code == 409
