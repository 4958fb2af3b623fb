"""restore-group: the organization's deleted Microsoft 365 group comes back from deleted items, with its members,
and is linked again; a security group (deleted for good), a group that still exists, or no group at all say so."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ms_support import Team, link
from sqlalchemy import select

from equa.microsoft.models import AuditEvent
from equa.organizations.models import Organization

pytestmark = pytest.mark.retry_budget("api")


async def age_links(session_factory: Any) -> None:
    async with session_factory() as session:
        for org in await session.scalars(select(Organization)):
            if org.microsoft_group_linked_at is not None:
                org.microsoft_group_linked_at = org.microsoft_group_linked_at.replace(year=2020)
        await session.commit()


async def test_a_deleted_group_is_restored_with_its_members_and_linked_again(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    group_id = await link(client, team, "marketing")
    members = set(emu.group_members(group_id))
    emu.delete_group_behind_app(group_id)
    missing = await client.get(team.url("group"), headers=team.admin_headers)
    assert missing.status_code == 409 and missing.json()["restorable"] is True, missing.text

    restored = await client.post(team.url("restore-group"), headers=team.admin_headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["id"] == group_id
    assert restored.json()["displayName"] == "Marketing"
    status = (await client.get(team.url("status"), headers=team.admin_headers)).json()
    assert status["linked"] is True and status["groupId"] == group_id
    assert set(emu.group_members(group_id)) == members
    assert emu.deleted_items() == []
    async with session_factory() as session:
        actions = [
            e.action
            for e in await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.organization_id == team.org.id)
                .order_by(AuditEvent.created_at)
            )
        ]
    assert actions[-3:] == ["group.missing", "group.restore", "group.link"]


async def test_restore_clears_a_link_to_a_deleted_group_first_then_restores_it(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    group_id = await link(client, team, "marketing")
    emu.delete_group_behind_app(group_id)  # nobody has read the group since: the link still points at it
    restored = await client.post(team.url("restore-group"), headers=team.admin_headers)
    assert restored.status_code == 200, restored.text
    assert (await client.get(team.url("group"), headers=team.admin_headers)).status_code == 200


async def test_a_security_group_cannot_be_restored_and_the_answer_says_why(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    group_id = await link(client, team, "security")
    await age_links(session_factory)
    emu.delete_group_behind_app(group_id)
    refused = await client.post(team.url("restore-group"), headers=team.admin_headers)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "microsoft_group_not_restorable"
    assert "security group" in problem["detail"] and problem["action"]
    # The link to the vanished group was cleared on the way, whatever the answer.
    assert (await client.get(team.url("status"), headers=team.admin_headers)).json()["linked"] is False


async def test_nothing_to_restore_while_the_linked_group_exists_or_when_none_was_ever_linked(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    never = await client.post(team.url("restore-group"), headers=team.admin_headers)
    assert never.status_code == 404 and never.json()["code"] == "microsoft_nothing_to_restore", never.text
    await link(client, team, "engineering")
    exists = await client.post(team.url("restore-group"), headers=team.admin_headers)
    assert exists.status_code == 409 and exists.json()["code"] == "microsoft_group_not_deleted", exists.text
    member = await client.post(team.url("restore-group"), headers=team.member_headers)
    assert member.status_code == 403


async def test_without_group_readwrite_all_restoring_names_the_permission_to_grant(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    group_id = await link(client, team, "marketing")
    emu.delete_group_behind_app(group_id)
    emu.set_app_roles(
        emu.client_id, ["Group.Read.All", "GroupMember.ReadWrite.All", "User.Read.All", "Group.Create"]
    )
    emu.revoke_tokens()
    refused = await client.post(team.url("restore-group"), headers=team.admin_headers)
    assert refused.status_code == 502, refused.text
    problem = refused.json()
    assert problem["code"] == "microsoft_permission_missing"
    assert "Group.ReadWrite.All" in problem["action"]
    assert [g["id"] for g in emu.deleted_items()] == [group_id]
