"""A linked person whose directory account was deleted and re-created under the same address is added again."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sync_support import directory_user, load_tenant, make_team

from equa.microsoft.models import MicrosoftMember

pytestmark = pytest.mark.retry_budget("sync")


async def test_a_recreated_account_is_found_again_and_added_under_its_new_id(
    client: httpx.AsyncClient, app: Any, emu: Any, session_factory: Any, bearer: Any
) -> None:
    person = directory_user(0)
    tenant = load_tenant(emu, [person])
    org, admin, (member,) = await make_team(session_factory, [person["mail"]], group_id=tenant.group_id)
    headers = await bearer(admin)
    sync = f"/api/v1/organizations/{org.id}/microsoft/sync-members?wait=60"

    first = (await client.post(sync, headers=headers)).json()
    assert first["status"] == "succeeded" and first["counts"]["added"] == 1, first

    # Later (past the window in which this process lays its own recent adds over Graph's lagging listing), the
    # account is deleted and created again: same address, new directory id, not in the group any more.
    app.state.graph.own_writes.clear()
    recreated = {**person, "id": str(uuid.uuid4())}
    load_tenant(emu, [recreated])
    second = (await client.post(sync, headers=headers)).json()

    assert second["status"] == "succeeded", second
    assert second["counts"]["added"] == 1 and second["counts"]["failed"] == 0, second
    assert set(emu.group_members(tenant.group_id)) == {recreated["id"]}
    async with session_factory() as session:
        link = await session.scalar(select(MicrosoftMember).where(MicrosoftMember.user_id == member.id))
    assert link is not None and link.directory_id == recreated["id"]
