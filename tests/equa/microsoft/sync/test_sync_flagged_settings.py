"""Flagged members (invite, dismiss, clearing), sync settings, removals, guest policy, access and bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sync_support import directory_user, load_tenant, make_team

from equa.microsoft.models import AuditEvent, MicrosoftMember
from equa.organizations.models import Membership

pytestmark = pytest.mark.retry_budget("sync")


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def run_sync(client: httpx.AsyncClient, org_id: Any, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(url(org_id, "sync-members?wait=30"), headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_invited_flag_clears_on_the_next_sync_and_a_dismissed_one_stays_quiet(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(4)]
    tenant = load_tenant(emu, users, members=[u["id"] for u in users])
    org, admin, _ = await make_team(session_factory, [users[0]["mail"]], group_id=tenant.group_id)
    headers = await bearer(admin)
    assert (await run_sync(client, org.id, headers))["counts"]["flagged"] == 3

    flags = (await client.get(url(org.id, "flagged-members?status=pending"), headers=headers)).json()["items"]
    by_mail = {f["email"]: f for f in flags}
    invited = await client.post(
        url(org.id, f"flagged-members/{by_mail[users[1]['mail']]['id']}/invite"), headers=headers
    )
    assert invited.status_code == 200 and invited.json()["status"] == "invited"
    # The person joins through the invitation's link, as the team form's invitations do.
    token = invited.json()["invitationUrl"].rsplit("/invitations/", 1)[1]
    joined = await client.post(
        f"/api/v1/invitations/{token}", json={"displayName": "Person 1", "password": "a long passphrase 1"}
    )
    assert joined.status_code == 201, joined.text
    client.cookies.clear()
    dismissed = await client.post(
        url(org.id, f"flagged-members/{by_mail[users[2]['mail']]['id']}/dismiss"), headers=headers
    )
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    async with session_factory() as session:
        members = await session.scalars(select(Membership).where(Membership.organization_id == org.id))
        assert users[1]["mail"] in {m.user.email for m in members}

    again = await run_sync(client, org.id, headers)
    assert again["counts"]["flagged"] == 1  # person3 only: person1 joined the team, person2 was dismissed
    assert again["counts"]["dismissedInGroup"] == 1
    remaining = (await client.get(url(org.id, "flagged-members"), headers=headers)).json()["items"]
    assert {(f["email"], f["status"]) for f in remaining} == {
        (users[2]["mail"], "dismissed"),
        (users[3]["mail"], "pending"),
    }


async def test_settings_round_trip_and_removal_only_of_departed_members_the_sync_added(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(4)]
    # person3 is in the group from the start (not added by the sync); person2 owns the group.
    tenant = load_tenant(emu, users, members=[users[3]["id"]], owners=[users[2]["id"]])
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    assert (await client.get(url(org.id, "settings"), headers=headers)).json() == {
        "autoSync": False,
        "removeDeparted": False,
    }
    await run_sync(client, org.id, headers)
    assert set(emu.group_members(tenant.group_id)) == {u["id"] for u in users}

    # Everyone but the admin leaves the team.
    async with session_factory() as session:
        for membership in await session.scalars(
            select(Membership).where(Membership.organization_id == org.id)
        ):
            if membership.user_id != admin.id:
                await session.delete(membership)
        await session.commit()
    kept = await run_sync(client, org.id, headers)
    assert kept["counts"]["removed"] == 0 and set(emu.group_members(tenant.group_id)) == {
        u["id"] for u in users
    }

    patched = await client.patch(url(org.id, "settings"), json={"removeDeparted": True}, headers=headers)
    assert patched.status_code == 200 and patched.json() == {"autoSync": False, "removeDeparted": True}
    removed = await run_sync(client, org.id, headers)
    # person0 and person1 go; person2 is an owner; person3 was never added by the sync.
    assert removed["counts"]["removed"] == 2
    assert set(emu.group_members(tenant.group_id)) == {users[2]["id"], users[3]["id"]}
    async with session_factory() as session:
        actions = [
            e.action
            for e in await session.scalars(select(AuditEvent).where(AuditEvent.organization_id == org.id))
        ]
        links = list(
            await session.scalars(select(MicrosoftMember).where(MicrosoftMember.organization_id == org.id))
        )
    assert actions.count("member.remove") == 2 and "sync.settings" in actions
    assert {link.directory_id for link in links} == {users[2]["id"], users[3]["id"]}


async def test_guests_kept_out_by_policy_are_reported_and_the_run_still_succeeds(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)] + [directory_user(9, guest=True)]
    tenant = load_tenant(emu, users, allow_guests=False)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    run = await run_sync(client, org.id, headers)
    assert run["counts"]["added"] == 3 and run["counts"]["blockedByPolicy"] == 1
    assert run["status"] == "succeeded"
    blocked = await client.get(
        url(org.id, f"sync-runs/{run['id']}/outcomes?outcome=blockedByPolicy"), headers=headers
    )
    [item] = blocked.json()["items"]
    assert item["email"] == users[3]["mail"] and "guest" in item["message"].lower()


async def test_only_admins_see_sync_and_bad_input_is_a_clear_422(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any, make_user: Any
) -> None:
    tenant = load_tenant(emu, [directory_user(0)])
    org, admin, [member] = await make_team(
        session_factory, [directory_user(0)["mail"]], group_id=tenant.group_id
    )
    admin_headers, member_headers = await bearer(admin), await bearer(member)
    for method, path in [
        ("POST", "sync-members"),
        ("GET", "sync-runs"),
        ("GET", "flagged-members"),
        ("GET", "settings"),
    ]:
        response = await client.request(method, url(org.id, path), headers=member_headers)
        assert response.status_code == 403, (path, response.text)
        assert (await client.request(method, url(org.id, path))).status_code == 401
    bad = [
        ("POST", "sync-members", {"dryRun": "yes"}, "dryRun"),
        ("PATCH", "settings", {"autoSync": 3}, "autoSync"),
        ("PATCH", "settings", {"surprise": True}, "surprise"),
        ("POST", "sync-members?wait=1000", None, "wait"),
        ("GET", "sync-runs?cursor=%%%", None, "cursor"),
        ("GET", "flagged-members?status=maybe", None, "status"),
    ]
    for method, path, body, field in bad:
        response = await client.request(method, url(org.id, path), json=body, headers=admin_headers)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.json()["detail"], response.json()
    missing = await client.get(
        url(org.id, "sync-runs/00000000-0000-0000-0000-000000000000"), headers=admin_headers
    )
    assert missing.status_code == 404
    unlinked, other_admin, _ = await make_team(session_factory, [], group_id=None)
    refused = await client.post(url(unlinked.id, "sync-members"), headers=await bearer(other_admin))
    assert refused.status_code == 409 and refused.json()["code"] == "group_not_linked"
    async with session_factory() as session:
        assert (await session.scalar(select(MicrosoftMember.id))) is None


async def test_a_dismissed_flag_can_be_restored_by_an_admin_only(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users, members=[u["id"] for u in users[1:]])
    org, admin, team = await make_team(session_factory, [users[0]["mail"]], group_id=tenant.group_id)
    headers = await bearer(admin)
    assert (await run_sync(client, org.id, headers))["counts"]["flagged"] == 2
    flags = (await client.get(url(org.id, "flagged-members?status=pending"), headers=headers)).json()["items"]
    flag_id = flags[0]["id"]

    not_dismissed = await client.post(url(org.id, f"flagged-members/{flag_id}/restore"), headers=headers)
    assert not_dismissed.status_code == 409 and not_dismissed.json()["code"] == "not_dismissed"
    await client.post(url(org.id, f"flagged-members/{flag_id}/dismiss"), headers=headers)
    member_headers = await bearer(team[0])
    refused = await client.post(url(org.id, f"flagged-members/{flag_id}/restore"), headers=member_headers)
    assert refused.status_code == 403, refused.text
    dismissed = (await client.get(url(org.id, "flagged-members?status=dismissed"), headers=headers)).json()
    assert [f["id"] for f in dismissed["items"]] == [flag_id]

    restored = await client.post(url(org.id, f"flagged-members/{flag_id}/restore"), headers=headers)
    assert restored.status_code == 200 and restored.json()["status"] == "pending"
    pending = (await client.get(url(org.id, "flagged-members?status=pending"), headers=headers)).json()
    assert flag_id in {f["id"] for f in pending["items"]}
    assert (await run_sync(client, org.id, headers))["counts"]["flagged"] == 2
