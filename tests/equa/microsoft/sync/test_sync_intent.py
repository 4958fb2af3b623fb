"""The sync keeps the admin's intent: its links belong to the linked group, and it removes only whom it added there."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sync_support import directory_user, load_tenant, make_team

from equa.accounts.models import User
from equa.microsoft.models import AuditEvent, MicrosoftMember
from equa.organizations.models import Membership, Role

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


async def outcome_emails(
    client: httpx.AsyncClient, org_id: Any, run: dict[str, Any], outcome: str, headers: Any
) -> set[str]:
    response = await client.get(
        url(org_id, f"sync-runs/{run['id']}/outcomes?outcome={outcome}"), headers=headers
    )
    assert response.status_code == 200, response.text
    return {item["email"] for item in response.json()["items"]}


async def test_a_member_removed_by_hand_stays_out_until_allowed_again_or_added_by_hand(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    # person2 is in the group from the start: the sync never linked them.
    tenant = load_tenant(emu, users, members=[users[2]["id"]])
    org, admin, team = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    assert (await run_sync(client, org.id, headers))["counts"]["added"] == 2

    for person in (users[1], users[2]):
        removed = await client.delete(url(org.id, f"group/members/{person['id']}"), headers=headers)
        assert removed.status_code == 204, removed.text
    listed = await client.get(url(org.id, "exclusions"), headers=headers)
    assert listed.status_code == 200, listed.text
    assert {(e["userId"], e["email"]) for e in listed.json()["items"]} == {
        (str(team[1].id), users[1]["mail"]),
        (str(team[2].id), users[2]["mail"]),
    }
    assert all(e["excludedBy"] == str(admin.id) for e in listed.json()["items"])

    again = await run_sync(client, org.id, headers)
    assert again["counts"]["added"] == 0 and again["counts"]["excluded"] == 2, again
    assert await outcome_emails(client, org.id, again, "excluded", headers) == {
        users[1]["mail"],
        users[2]["mail"],
    }
    assert set(emu.group_members(tenant.group_id)) == {users[0]["id"]}

    # "Allow again": the next sync adds person1 back. Adding person2 by hand lifts their exclusion too.
    allowed = await client.delete(url(org.id, f"exclusions/{team[1].id}"), headers=headers)
    assert allowed.status_code == 204, allowed.text
    added = await client.post(url(org.id, "group/members"), json={"email": users[2]["mail"]}, headers=headers)
    assert added.status_code == 201, added.text
    assert (await client.get(url(org.id, "exclusions"), headers=headers)).json()["items"] == []
    last = await run_sync(client, org.id, headers)
    assert last["counts"]["added"] == 1 and last["counts"]["excluded"] == 0, last
    assert set(emu.group_members(tenant.group_id)) == {u["id"] for u in users}

    gone = await client.delete(url(org.id, f"exclusions/{team[1].id}"), headers=headers)
    assert gone.status_code == 404 and gone.json()["code"] == "exclusion_not_found"
    member_headers = await bearer(team[0])
    assert (await client.get(url(org.id, "exclusions"), headers=member_headers)).status_code == 403
    async with session_factory() as session:
        actions = [
            e.action
            for e in await session.scalars(select(AuditEvent).where(AuditEvent.organization_id == org.id))
        ]
    assert actions.count("member.exclude") == 2 and actions.count("member.allow") == 2


async def test_people_added_by_hand_are_linked_or_left_unflagged_by_the_next_sync(
    client: httpx.AsyncClient, app: Any, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users)
    # The member's Equa address is not one the tenant knows: only an admin can say which account is theirs.
    org, admin, (member,) = await make_team(session_factory, ["nadia@equa.example"], group_id=tenant.group_id)
    _, _, (outsider,) = await make_team(session_factory, ["x@equa.example"], group_id=None)
    headers = await bearer(admin)

    refused = await client.post(
        url(org.id, "group/members"),
        json={"equaUserId": str(outsider.id), "userId": users[0]["id"]},
        headers=headers,
    )
    assert refused.status_code == 404 and refused.json()["code"] == "equa_user_not_found", refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")

    linked = await client.post(
        url(org.id, "group/members"),
        json={"equaUserId": str(member.id), "userId": users[0]["id"]},
        headers=headers,
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["member"]["equaUserId"] == str(member.id)
    # Two people not on the team, added by hand by id and by address: the admin chose them.
    for body in ({"userId": users[1]["id"]}, {"email": users[2]["mail"]}):
        chosen = await client.post(url(org.id, "group/members"), json=body, headers=headers)
        assert chosen.status_code == 201, chosen.text

    run = await run_sync(client, org.id, headers)
    assert run["counts"]["flagged"] == 0 and run["counts"]["alreadyMember"] == 1, run
    assert run["counts"]["added"] == 0, run
    assert await outcome_emails(client, org.id, run, "notInTenant", headers) == {admin.email}
    members = (await client.get(url(org.id, "group/members"), headers=headers)).json()["items"]
    assert {m["id"]: m["equaUserId"] for m in members} == {
        users[0]["id"]: str(member.id),
        users[1]["id"]: None,
        users[2]["id"]: None,
    }
    async with session_factory() as session:
        link = await session.scalar(select(MicrosoftMember).where(MicrosoftMember.user_id == member.id))
    assert link is not None and link.matched_by == "explicit" and link.directory_id == users[0]["id"]

    # Removed by hand, a person added by hand is forgotten: if they come back another way, they are flagged.
    await client.delete(url(org.id, f"group/members/{users[1]['id']}"), headers=headers)
    emu.add_members(tenant.group_id, [users[1]["id"]])
    emu.replicate_now()
    app.state.graph.own_writes.clear()
    assert (await run_sync(client, org.id, headers))["counts"]["flagged"] == 1


async def test_the_settings_page_lists_people_removed_by_hand_with_allow_again_and_marks_people_added_by_hand(
    client: httpx.AsyncClient,
    emu: Any,
    session_factory: Any,
    bearer: Any,
    make_user: Any,
    sign_in: Any,
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users)
    org, admin, team = await make_team(
        session_factory, [u["mail"] for u in users[:2]], group_id=tenant.group_id
    )
    headers = await bearer(admin)
    assert (await run_sync(client, org.id, headers))["counts"]["added"] == 2
    added = await client.post(url(org.id, "group/members"), json={"userId": users[2]["id"]}, headers=headers)
    assert added.status_code == 201, added.text

    page_admin = await make_user(password="a long passphrase 1")
    async with session_factory() as session:
        session.add(Membership(organization_id=org.id, user_id=page_admin.id, role=Role.ADMIN))
        await session.commit()
    csrf = {"X-CSRF-Token": await sign_in(page_admin, "a long passphrase 1")}
    base = f"/organizations/{org.id}/settings/microsoft"

    members = await client.get(f"{base}/members")
    assert members.status_code == 200, members.text
    rows = {row.split('"', 1)[0]: row for row in members.text.split('data-member-id="')[1:]}
    assert 'data-role="added-by-hand"' in rows[users[2]["id"]]
    assert 'data-role="added-by-hand"' not in rows[users[1]["id"]]

    removed = await client.delete(f"{base}/members/{users[1]['id']}?name=person1", headers=csrf)
    assert removed.status_code == 200, removed.text
    assert "ms-exclusions" in removed.headers["HX-Trigger"]
    listed = await client.get(f"{base}/exclusions")
    assert f'data-user-id="{team[1].id}"' in listed.text and "Allow again" in listed.text

    allowed = await client.post(f"{base}/exclusions/{team[1].id}/allow", headers=csrf)
    assert allowed.status_code == 200, allowed.text
    assert "allowed again" in allowed.text and 'data-user-id="' not in allowed.text
    assert (await client.get(url(org.id, "exclusions"), headers=headers)).json()["items"] == []


async def named(
    client: httpx.AsyncClient, org_id: Any, run: dict[str, Any], headers: Any
) -> set[tuple[str, str, str]]:
    response = await client.get(url(org_id, f"sync-runs/{run['id']}/outcomes"), headers=headers)
    return {(item["outcome"], item["displayName"], item["email"]) for item in response.json()["items"]}


async def test_run_results_name_people_as_the_members_table_does_with_their_address_beside(
    client: httpx.AsyncClient, app: Any, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users, members=[users[2]["id"]])
    # Equa knows these people by the local part of their address; Microsoft 365 by their names ("Person 0").
    org, admin, team = await make_team(
        session_factory, [u["mail"] for u in users[:2]], group_id=tenant.group_id, remove_departed=True
    )
    headers = await bearer(admin)
    first = await run_sync(client, org.id, headers)
    assert {row for row in await named(client, org.id, first, headers) if row[0] != "notInTenant"} == {
        ("added", "Person 0", users[0]["mail"]),
        ("added", "Person 1", users[1]["mail"]),
        ("flagged", "Person 2", users[2]["mail"]),
    }
    await leave_team(session_factory, org.id, team[1].id)
    emu.replicate_now()
    app.state.graph.own_writes.clear()
    preview = (
        await client.post(url(org.id, "sync-members?wait=30"), json={"dryRun": True}, headers=headers)
    ).json()
    assert ("removed", "Person 1", users[1]["mail"]) in await named(client, org.id, preview, headers)
    after = await run_sync(client, org.id, headers)
    assert ("removed", "Person 1", users[1]["mail"]) in await named(client, org.id, after, headers)
