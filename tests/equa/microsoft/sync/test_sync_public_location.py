"""With EQUA_PUBLIC_URL set, the Location of a sync run is an absolute link at the public address."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sync_support import directory_user, load_tenant, make_team

from equa.settings import Settings


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    return emulator_settings("sync", public_url="https://equa.example.com")


async def test_the_run_location_is_at_the_public_address(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(2)]
    tenant = load_tenant(emu, users, owners=[users[0]["id"]])
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)

    response = await client.post(
        f"/api/v1/organizations/{org.id}/microsoft/sync-members?wait=30", json={}, headers=await bearer(admin)
    )

    assert response.status_code == 200, response.text
    assert response.headers["location"] == (
        f"https://equa.example.com/api/v1/organizations/{org.id}/microsoft/sync-runs/{response.json()['id']}"
    )
