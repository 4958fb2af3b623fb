"""Spec section 7, against the emulator: link, create, unlink, details, members, add, remove, errors, audit."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from ms_support import Team, link, seed_group_id, tenant_guests, tenant_members
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.microsoft.models import AuditEvent, GroupCreation
from equa.organizations.models import Organization
from graph_emulator.seeds import default_seed

pytestmark = pytest.mark.retry_budget("api")


async def audit_actions(session_factory: async_sessionmaker[AsyncSession], org_id: uuid.UUID) -> list[str]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.organization_id == org_id).order_by(AuditEvent.created_at)
        )
        return [f"{e.action}:{e.outcome}" for e in rows]


async def linked_group(
    session_factory: async_sessionmaker[AsyncSession], org_id: uuid.UUID
) -> uuid.UUID | None:
    async with session_factory() as session:
        org = await session.get(Organization, org_id)
        assert org is not None
        return org.microsoft_group


# --- link -------------------------------------------------------------------------------------------------


async def test_admin_links_an_existing_group_by_id(
    client: httpx.AsyncClient, team: Team, session_factory: Any
) -> None:
    group_id = seed_group_id("engineering")
    response = await client.post(
        team.url("link-group"), json={"groupId": group_id}, headers=team.admin_headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == group_id
    assert body["displayName"] == "Engineering"
    assert body["capabilities"]["manageMembers"] is True
    assert str(await linked_group(session_factory, team.org.id)) == group_id
    assert await audit_actions(session_factory, team.org.id) == ["group.link:success"]

    again = await client.post(team.url("link-group"), json={"groupId": group_id}, headers=team.admin_headers)
    assert again.status_code == 200
    assert await audit_actions(session_factory, team.org.id) == ["group.link:success"]  # no change


async def test_link_refuses_bad_ids_unknown_groups_and_a_second_group(
    client: httpx.AsyncClient, team: Team, session_factory: Any
) -> None:
    bad = await client.post(team.url("link-group"), json={"groupId": "nope"}, headers=team.admin_headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "groupId"

    unknown = await client.post(
        team.url("link-group"), json={"groupId": str(uuid.uuid4())}, headers=team.admin_headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "microsoft_group_not_found"
    assert await linked_group(session_factory, team.org.id) is None

    await link(client, team, "engineering")
    other = await client.post(
        team.url("link-group"), json={"groupId": seed_group_id("marketing")}, headers=team.admin_headers
    )
    assert other.status_code == 409
    assert other.json()["code"] == "microsoft_group_already_linked"
    assert "unlink" in other.json()["action"].lower()


async def test_a_group_never_serves_two_organizations(
    client: httpx.AsyncClient, team: Team, session_factory: Any
) -> None:
    group_id = await link(client, team, "engineering")
    response = await client.post(
        team.url("link-group", team.other_org), json={"groupId": group_id}, headers=team.outsider_headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "microsoft_group_linked_elsewhere"
    assert team.org.name not in response.text  # the other customer's name is not leaked
    assert await linked_group(session_factory, team.other_org.id) is None


async def test_groups_graph_cannot_manage_are_refused_with_the_reason(
    client: httpx.AsyncClient, team: Team, session_factory: Any
) -> None:
    expected = {
        "dynamic": "dynamic_membership",
        "mail-security": "mail_enabled_security",
        "distribution": "distribution_list",
        "on-prem": "synced_from_on_premises",
        "role-assignable": "role_assignable",
    }
    for key, reason in expected.items():
        response = await client.post(
            team.url("link-group"), json={"groupId": seed_group_id(key)}, headers=team.admin_headers
        )
        assert response.status_code == 422, (key, response.text)
        problem = response.json()
        assert problem["code"] == "microsoft_group_unlinkable"
        assert problem["reason"] == reason
        assert problem["action"]
    assert await linked_group(session_factory, team.org.id) is None


# --- create -----------------------------------------------------------------------------------------------


async def test_admin_creates_a_private_group_owned_by_them(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any, app: Any
) -> None:
    response = await client.post(
        team.url("create-group"),
        json={"displayName": "Équipe Falcon 2025!", "description": "Created from Equa"},
        headers=team.admin_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mailNickname"] == "equipe-falcon-2025"
    assert body["visibility"] == "Private"
    assert body["groupTypes"] == ["Unified"]
    group = emu.get_group(body["id"])
    assert group is not None
    assert group["mailEnabled"] is True and group["securityEnabled"] is True
    assert str(await linked_group(session_factory, team.org.id)) == body["id"]
    owners = await client.get(team.url("group"), headers=team.admin_headers)
    assert owners.status_code == 200
    owners_of_group = await app.state.graph.get(f"groups/{body['id']}/owners")
    assert [o["id"] for o in owners_of_group.json()["value"]] == [tenant_members()[0]["id"]]
    assert await audit_actions(session_factory, team.org.id) == ["group.create:success"]


async def test_taken_nicknames_derived_get_a_suffix_explicit_get_409(
    client: httpx.AsyncClient, team: Team, session_factory: Any
) -> None:
    explicit = await client.post(
        team.url("create-group"),
        json={"displayName": "Eng", "mailNickname": "engineering"},
        headers=team.admin_headers,
    )
    assert explicit.status_code == 409
    assert explicit.json()["code"] == "microsoft_nickname_taken"

    invalid = await client.post(
        team.url("create-group"),
        json={"displayName": "X", "mailNickname": "a b@c"},
        headers=team.admin_headers,
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "mailNickname"
    assert await linked_group(session_factory, team.org.id) is None

    derived = await client.post(
        team.url("create-group"), json={"displayName": "Engineering"}, headers=team.admin_headers
    )
    assert derived.status_code == 201, derived.text
    assert derived.json()["mailNickname"] == "engineering-2"


async def test_create_with_the_same_idempotency_key_makes_one_group(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    headers = {**team.admin_headers, "Idempotency-Key": "create-1"}
    first = await client.post(team.url("create-group"), json={"displayName": "Retry Me"}, headers=headers)
    second = await client.post(team.url("create-group"), json={"displayName": "Retry Me"}, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["id"] == second.json()["id"]
    assert len(emu.find_groups(displayName="Retry Me")) == 1
    async with session_factory() as session:
        creation = await session.scalar(select(GroupCreation))
        assert creation is not None and creation.group_id == first.json()["id"]


async def test_create_after_an_earlier_attempt_created_the_group_adopts_it(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    # The earlier attempt reached Graph, then failed: its record has a nickname and no group id.
    made = emu.add_group(
        displayName="Half Done",
        mailNickname="half-done",
        groupTypes=["Unified"],
        mailEnabled=True,
        securityEnabled=True,
        visibility="Private",
    )
    async with session_factory() as session:
        session.add(
            GroupCreation(organization_id=team.org.id, idempotency_key="k-2", mail_nickname="half-done")
        )
        await session.commit()
    response = await client.post(
        team.url("create-group"),
        json={"displayName": "Half Done"},
        headers={**team.admin_headers, "Idempotency-Key": "k-2"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == made["id"]
    assert len(emu.find_groups(displayName="Half Done")) == 1


async def test_create_when_already_linked_says_unlink_first(client: httpx.AsyncClient, team: Team) -> None:
    await link(client, team)
    response = await client.post(
        team.url("create-group"), json={"displayName": "New"}, headers=team.admin_headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "microsoft_group_already_linked"


# --- unlink -----------------------------------------------------------------------------------------------


async def test_unlink_keeps_the_group_in_microsoft_365(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    group_id = await link(client, team)
    response = await client.delete(team.url("unlink-group"), headers=team.admin_headers)
    assert response.status_code == 204
    assert await linked_group(session_factory, team.org.id) is None
    assert emu.get_group(group_id) is not None
    assert await audit_actions(session_factory, team.org.id) == ["group.link:success", "group.unlink:success"]
    again = await client.delete(team.url("unlink-group"), headers=team.admin_headers)
    assert again.status_code == 409


# --- details and members ----------------------------------------------------------------------------------


async def test_group_details_show_name_description_and_member_count(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    group_id = await link(client, team, "engineering")
    response = await client.get(team.url("group"), headers=team.admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["displayName"] == "Engineering"
    assert body["description"] == "Engineering team"
    assert body["memberCount"] == len(emu.group_members(group_id)) == 13
    assert body["mailNickname"] == "engineering"
    assert body["createdDateTime"]


async def test_members_are_paged_through_graph_and_matched_to_the_team(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    group_id = await link(client, team, "engineering")
    emu.reset_stats()
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        response = await client.get(team.url("group/members"), params=params, headers=team.admin_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 5
        seen.extend(body["items"])
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(m["id"] for m in seen) == sorted(emu.group_members(group_id))
    assert emu.stats()["requests"].get("GET /v1.0/groups/{id}/members", 0) == 3
    by_id = {m["id"]: m for m in seen}
    assert by_id[tenant_members()[0]["id"]]["equaUserId"] == str(team.admin.id)
    assert by_id[tenant_members()[1]["id"]]["equaUserId"] == str(team.member.id)
    assert sum(1 for m in seen if m["equaUserId"]) == 2
    assert any(m["userType"] == "Guest" for m in seen)

    forged = await client.get(
        team.url("group/members"),
        params={"cursor": "aHR0cHM6Ly9ldmlsLmV4YW1wbGUv"},
        headers=team.admin_headers,
    )
    assert forged.status_code == 422


async def test_admin_adds_and_removes_members(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    group_id = await link(client, team, "empty-team")
    person = tenant_members()[20]
    added = await client.post(
        team.url("group/members"), json={"userId": person["id"]}, headers=team.admin_headers
    )
    assert added.status_code == 201, added.text
    assert added.json()["added"] is True
    assert person["id"] in emu.group_members(group_id)

    again = await client.post(
        team.url("group/members"), json={"email": person["mail"]}, headers=team.admin_headers
    )
    assert again.status_code == 200, again.text
    assert again.json()["added"] is False

    by_team = await client.post(
        team.url("group/members"), json={"equaUserId": str(team.member.id)}, headers=team.admin_headers
    )
    assert by_team.status_code == 201, by_team.text
    assert by_team.json()["member"]["equaUserId"] == str(team.member.id)
    assert tenant_members()[1]["id"] in emu.group_members(group_id)

    removed = await client.delete(team.url(f"group/members/{person['id']}"), headers=team.admin_headers)
    assert removed.status_code == 204
    assert person["id"] not in emu.group_members(group_id)
    removed_again = await client.delete(team.url(f"group/members/{person['id']}"), headers=team.admin_headers)
    assert removed_again.status_code == 204

    actions = await audit_actions(session_factory, team.org.id)
    assert actions.count("member.add:success") == 3
    assert actions.count("member.remove:success") == 2


async def test_member_add_errors_are_clear(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    await link(client, team, "empty-team")
    unknown = await client.post(
        team.url("group/members"),
        json={"email": "nobody@contoso.onmicrosoft.com"},
        headers=team.admin_headers,
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "microsoft_user_not_found"
    unknown_id = await client.post(
        team.url("group/members"), json={"userId": str(uuid.uuid4())}, headers=team.admin_headers
    )
    assert unknown_id.status_code == 404
    not_team = await client.post(
        team.url("group/members"), json={"equaUserId": str(team.outsider.id)}, headers=team.admin_headers
    )
    assert not_team.status_code == 404
    both = await client.post(
        team.url("group/members"),
        json={"email": "a@b.example", "userId": str(uuid.uuid4())},
        headers=team.admin_headers,
    )
    assert both.status_code == 422

    emu.set_tenant_policy(allow_guests_in_groups=False)
    guest = tenant_guests()[0]
    blocked = await client.post(
        team.url("group/members"), json={"userId": guest["id"]}, headers=team.admin_headers
    )
    assert blocked.status_code == 422, blocked.text
    assert blocked.json()["code"] == "microsoft_guest_blocked"
    assert "member.add:failure" in await audit_actions(session_factory, team.org.id)
    bad_member = await client.delete(team.url("group/members/not-a-guid"), headers=team.admin_headers)
    assert bad_member.status_code == 422


async def test_graph_errors_are_actionable(client: httpx.AsyncClient, team: Team, emu: Any) -> None:
    await link(client, team)
    emu.set_app_roles(emu.client_id, [])
    emu.revoke_tokens()
    response = await client.get(team.url("group"), headers=team.admin_headers)
    assert response.status_code == 502, response.text
    problem = response.json()
    assert problem["code"] == "microsoft_permission_missing"
    assert problem["adminConsentUrl"].startswith(emu.base_url)
    assert "consent" in problem["action"].lower()
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_audit_trail_is_paged_newest_first(client: httpx.AsyncClient, team: Team) -> None:
    await link(client, team)
    await client.delete(team.url("unlink-group"), headers=team.admin_headers)
    await link(client, team, "marketing")
    first = await client.get(team.url("audit"), params={"limit": "2"}, headers=team.admin_headers)
    assert first.status_code == 200
    body = first.json()
    assert [e["action"] for e in body["items"]] == ["group.link", "group.unlink"]
    assert body["items"][0]["actorUserId"] == str(team.admin.id)
    rest = await client.get(
        team.url("audit"), params={"cursor": body["nextCursor"]}, headers=team.admin_headers
    )
    assert [e["action"] for e in rest.json()["items"]] == ["group.link"]
    assert rest.json()["nextCursor"] is None


async def test_group_search_marks_what_cannot_be_linked(client: httpx.AsyncClient, team: Team) -> None:
    await link(client, team, "engineering")
    response = await client.get(team.url("groups"), params={"limit": "50"}, headers=team.admin_headers)
    assert response.status_code == 200, response.text
    items = {g["displayName"]: g for g in response.json()["items"]}
    every_group = default_seed()["tenants"][0]["groups"]
    assert len(items) == len(every_group)  # every group of the tenant, none omitted
    assert items["Engineering"]["linkedHere"] is True
    assert items["Marketing"]["linkable"] is True
    assert items["All Sales (dynamic)"]["reasonCode"] == "dynamic_membership"
    assert items["Helpdesk Administrators"]["reasonCode"] == "role_assignable"
    found = await client.get(team.url("groups"), params={"search": "mark"}, headers=team.admin_headers)
    assert [g["displayName"] for g in found.json()["items"]] == ["Marketing"]


async def test_a_failed_create_is_on_the_audit_trail(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    emu.set_app_roles(emu.client_id, ["GroupMember.ReadWrite.All", "User.Read.All"])  # may read, not create
    emu.revoke_tokens()
    response = await client.post(
        team.url("create-group"), json={"displayName": "Denied"}, headers=team.admin_headers
    )
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "microsoft_permission_missing"
    assert await audit_actions(session_factory, team.org.id) == ["group.create:failure"]
    assert await linked_group(session_factory, team.org.id) is None
