"""The sync keeps the admin's intent: its links belong to the linked group, and it removes only whom it added there."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sync_support import directory_user, load_tenant, make_team

from equa.accounts.models import User
from equa.microsoft.models import MicrosoftMember
from equa.organizations.models import Membership

pytestmark = pytest.mark.retry_budget("sync")


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def run_sync(client: httpx.AsyncClient, org_id: Any, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(url(org_id, "sync-members?wait=30"), headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] in {"succeeded", "partial"}, body
    return body


async def leave_team(session_factory: Any, org_id: Any, user_id: Any) -> None:
    async with session_factory() as session:
        await session.execute(
            delete(Membership).where(Membership.organization_id == org_id, Membership.user_id == user_id)
        )
        await session.commit()


def second_group(emu: Any, members: list[str]) -> str:
    group = emu.add_group(
        members=members,
        displayName="Second team",
        groupTypes=["Unified"],
        mailEnabled=True,
        securityEnabled=False,
        mailNickname="second-team",
        visibility="Private",
    )
    return str(group["id"])


async def test_a_link_moved_to_an_account_added_by_hand_does_not_count_as_added_by_the_sync(
    client: httpx.AsyncClient, app: Any, emu: Any, session_factory: Any, bearer: Any
) -> None:
    first, second = directory_user(0), directory_user(1)
    tenant = load_tenant(emu, [first, second])
    org, admin, (member,) = await make_team(
        session_factory, [first["mail"]], group_id=tenant.group_id, remove_departed=True
    )
    headers = await bearer(admin)
    assert (await run_sync(client, org.id, headers))["counts"]["added"] == 1

    # Someone adds person1's account to the group in Microsoft 365, and the member's Equa address becomes person1's.
    emu.add_members(tenant.group_id, [second["id"]])
    app.state.graph.own_writes.clear()
    async with session_factory() as session:
        user = await session.get(User, member.id)
        assert user is not None
        user.email = user.email_normalized = second["mail"]
        await session.commit()
    moved = await run_sync(client, org.id, headers)
    assert moved["counts"]["added"] == 0 and moved["counts"]["alreadyMember"] == 1, moved
    async with session_factory() as session:
        link = await session.scalar(select(MicrosoftMember).where(MicrosoftMember.user_id == member.id))
    assert link is not None and link.directory_id == second["id"]
    assert link.added_by_sync is False

    # The member leaves the team: the sync never added person1's account, so it stays.
    await leave_team(session_factory, org.id, member.id)
    after = await run_sync(client, org.id, headers)
    assert after["counts"]["removed"] == 0, after
    assert second["id"] in emu.group_members(tenant.group_id)


async def test_after_a_relink_remove_departed_spares_people_the_sync_added_only_to_the_old_group(
    client: httpx.AsyncClient, app: Any, emu: Any, session_factory: Any, bearer: Any
) -> None:
    person = directory_user(0)
    tenant = load_tenant(emu, [person])
    other_group = second_group(emu, [person["id"]])
    org, admin, (member,) = await make_team(
        session_factory, [person["mail"]], group_id=tenant.group_id, remove_departed=True
    )
    headers = await bearer(admin)
    assert (await run_sync(client, org.id, headers))["counts"]["added"] == 1

    assert (await client.delete(url(org.id, "unlink-group"), headers=headers)).status_code == 204
    async with session_factory() as session:
        left = await session.scalars(select(MicrosoftMember).where(MicrosoftMember.organization_id == org.id))
        assert list(left) == []  # an unlink starts fresh
    linked = await client.post(url(org.id, "link-group"), json={"groupId": other_group}, headers=headers)
    assert linked.status_code == 200, linked.text
    assert (await run_sync(client, org.id, headers))["counts"]["alreadyMember"] == 1

    # The person leaves the team. They were in the new group before it was linked: the sync did not add them there.
    await leave_team(session_factory, org.id, member.id)
    after = await run_sync(client, org.id, headers)
    assert after["counts"]["removed"] == 0, after
    assert person["id"] in emu.group_members(other_group)
    # In the old group, which the sync did fill, nothing changes either: it is no longer linked.
    assert person["id"] in emu.group_members(tenant.group_id)
