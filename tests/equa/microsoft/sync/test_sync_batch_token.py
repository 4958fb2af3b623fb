"""Every sync write goes through $batch: an item answered 401 (the token expired on the way) gets a fresh token and
one more try, as any Graph call does, instead of failing the run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sync_support import directory_user, load_tenant, make_team

pytestmark = pytest.mark.retry_budget("sync")


async def test_a_write_item_rejecting_the_token_is_retried_with_a_fresh_one_and_the_run_succeeds(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(6)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    emu.set_batch_item_faults({"method": "PATCH", "path": "/groups/", "status": 401, "times": 1})

    response = await client.post(
        f"/api/v1/organizations/{org.id}/microsoft/sync-members?wait=30", json={}, headers=headers
    )
    run = response.json()
    assert run["status"] == "succeeded", run
    assert run["counts"]["added"] == 6, run
    assert emu.batch_item_faults()["injected"] == 1
    emu.replicate_now()
    assert set(emu.group_members(tenant.group_id)) == {u["id"] for u in users}
