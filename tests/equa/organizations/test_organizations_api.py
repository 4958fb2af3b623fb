"""Organizations and team members through the API: creation, roles, the last-admin rule (invitations: test_invitations)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from equa.accounts.models import User
from equa.organizations.models import Organization

MakeUser = Callable[..., Awaitable[User]]
MakeOrg = Callable[..., Awaitable[Organization]]
Bearer = Callable[[User], Awaitable[dict[str, str]]]


async def test_creator_becomes_admin_and_sees_only_their_organizations(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer
) -> None:
    ann, bob = await make_user(), await make_user()
    await make_org(bob, name="Bob's")
    headers = await bearer(ann)

    created = await client.post("/api/v1/organizations", json={"name": "  Acme  "}, headers=headers)
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Acme"
    assert body["role"] == "admin"
    assert body["microsoftGroup"] is None

    mine = (await client.get("/api/v1/organizations", headers=headers)).json()
    assert [o["id"] for o in mine] == [body["id"]]
    one = await client.get(f"/api/v1/organizations/{body['id']}", headers=headers)
    assert one.json()["name"] == "Acme"
    members = (await client.get(f"/api/v1/organizations/{body['id']}/members", headers=headers)).json()
    assert [(m["userId"], m["role"]) for m in members] == [(str(ann.id), "admin")]


async def test_roles_change_and_the_last_admin_is_protected(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer
) -> None:
    admin, member = await make_user(), await make_user()
    org = await make_org(admin, members=[member])
    headers = await bearer(admin)
    base = f"/api/v1/organizations/{org.id}/members"

    demote_self = await client.patch(f"{base}/{admin.id}", json={"role": "member"}, headers=headers)
    assert demote_self.status_code == 409
    assert demote_self.json()["code"] == "last_admin"
    remove_self = await client.delete(f"{base}/{admin.id}", headers=headers)
    assert remove_self.status_code == 409

    promoted = await client.patch(f"{base}/{member.id}", json={"role": "admin"}, headers=headers)
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    # With two admins, one may step down.
    stepped_down = await client.patch(f"{base}/{admin.id}", json={"role": "member"}, headers=headers)
    assert stepped_down.status_code == 200
    # ...and is now a member, so admin operations are refused.
    assert (await client.delete(f"{base}/{member.id}", headers=headers)).status_code == 403

    new_admin_headers = await bearer(member)
    removed = await client.delete(f"{base}/{admin.id}", headers=new_admin_headers)
    assert removed.status_code == 204
    remaining = (await client.get(base, headers=new_admin_headers)).json()
    assert [(m["userId"], m["role"]) for m in remaining] == [(str(member.id), "admin")]
    assert (await client.get(f"/api/v1/organizations/{org.id}", headers=headers)).status_code == 404


async def test_changing_someone_who_is_not_a_member_is_404(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer
) -> None:
    admin, outsider = await make_user(), await make_user()
    org = await make_org(admin)
    headers = await bearer(admin)
    base = f"/api/v1/organizations/{org.id}/members/{outsider.id}"
    assert (await client.patch(base, json={"role": "admin"}, headers=headers)).status_code == 404
    assert (await client.delete(base, headers=headers)).status_code == 404
