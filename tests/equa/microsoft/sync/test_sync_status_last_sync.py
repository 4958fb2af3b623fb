"""The status card's lastSync is the last real sync; previews (dry runs) show apart, as lastPreview."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sync_support import directory_user, load_tenant, make_team

pytestmark = pytest.mark.retry_budget("sync")


async def test_a_preview_is_not_reported_as_the_last_sync(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    person = directory_user(0)
    tenant = load_tenant(emu, [person])
    org, admin, _ = await make_team(session_factory, [person["mail"]], group_id=tenant.group_id)
    headers = await bearer(admin)
    base = f"/api/v1/organizations/{org.id}/microsoft"

    preview = (
        await client.post(f"{base}/sync-members?wait=60", json={"dryRun": True}, headers=headers)
    ).json()
    assert preview["dryRun"] is True and preview["status"] == "succeeded", preview
    status = (await client.get(f"{base}/status", headers=headers)).json()
    assert status["lastSync"] is None, status
    assert status["lastPreview"]["id"] == preview["id"] and status["lastPreview"]["dryRun"] is True

    real = (await client.post(f"{base}/sync-members?wait=60", json={}, headers=headers)).json()
    assert real["status"] == "succeeded", real
    status = (await client.get(f"{base}/status", headers=headers)).json()
    assert status["lastSync"]["id"] == real["id"] and status["lastSync"]["dryRun"] is False
    assert status["lastPreview"]["id"] == preview["id"]
