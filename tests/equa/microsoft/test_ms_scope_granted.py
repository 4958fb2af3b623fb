"""MS_GROUP_SCOPE=granted (the default): the chain of issue 12 as a regression test, and what an organization can do.

A member of one organization creates an organization of their own and tries to reach the tenant's groups: the
picker shows none, linking, reading, adding and removing answer 403 microsoft_group_out_of_scope and nothing
changes in Microsoft 365. What it created, or what an operator granted it, it can link and manage.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from ms_support import Team, seed_group_id, tenant_members
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.microsoft.models import AuditEvent, GroupCreation, MicrosoftGroupGrant
from equa.organizations.models import Organization
from equa.settings import Settings

VPN_USERS = seed_group_id("security")
ENGINEERING = seed_group_id("engineering")


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    return emulator_settings(
        "api",
        tenant_wide=False,
        graph_max_attempts=3,
        graph_max_retry_wait_seconds=2.0,
        status_cache_seconds=0,
        group_create_limit=3,
    )


async def own_organization(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """The attacker's first step: a plain member creates an organization and becomes its admin."""
    response = await client.post("/api/v1/organizations", json={"name": "Mine"}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def url(org_id: str | uuid.UUID, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def force_link(
    session_factory: async_sessionmaker[AsyncSession], org_id: str | uuid.UUID, group_id: str
) -> None:
    """A link made before the scope existed (or while the operator ran in tenant mode)."""
    async with session_factory() as session:
        org = await session.get(Organization, uuid.UUID(str(org_id)))
        assert org is not None
        org.microsoft_group = uuid.UUID(group_id)
        org.microsoft_group_linked_at = utcnow() - timedelta(hours=1)
        await session.commit()


async def linked(session_factory: async_sessionmaker[AsyncSession], org_id: str | uuid.UUID) -> str | None:
    async with session_factory() as session:
        org = await session.get(Organization, uuid.UUID(str(org_id)))
        assert org is not None
        return str(org.microsoft_group) if org.microsoft_group else None


def assert_out_of_scope(response: httpx.Response, org_id: str | uuid.UUID, group_id: str) -> None:
    assert response.status_code == 403, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["code"] == "microsoft_group_out_of_scope"
    assert problem["action"] == f"Ask an operator to grant it: equa microsoft grant-group {org_id} {group_id}"


async def test_a_self_made_organization_sees_no_tenant_group_and_cannot_link_one(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    org_id = await own_organization(client, team.member_headers)
    picker = await client.get(url(org_id, "groups"), headers=team.member_headers)
    assert picker.status_code == 200
    assert picker.json()["items"] == []
    searched = await client.get(url(org_id, "groups"), params={"search": "VPN"}, headers=team.member_headers)
    assert searched.json()["items"] == []

    before = emu.stats()
    response = await client.post(
        url(org_id, "link-group"), json={"groupId": VPN_USERS}, headers=team.member_headers
    )
    assert_out_of_scope(response, org_id, VPN_USERS)
    # Refused before Graph was asked anything about the group: the caller cannot even learn whether it exists.
    made_up = str(uuid.uuid4())
    assert_out_of_scope(
        await client.post(url(org_id, "link-group"), json={"groupId": made_up}, headers=team.member_headers),
        org_id,
        made_up,
    )
    assert emu.stats()["graph_requests"] == before["graph_requests"]
    assert await linked(session_factory, org_id) is None


async def test_every_operation_on_a_group_outside_the_scope_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    org_id = await own_organization(client, team.member_headers)
    await force_link(session_factory, org_id, VPN_USERS)
    members_before = sorted(emu.group_members(VPN_USERS))
    outsider_id = next(u["id"] for u in tenant_members() if u["id"] not in members_before)
    h = team.member_headers

    assert_out_of_scope(await client.get(url(org_id, "group"), headers=h), org_id, VPN_USERS)
    assert_out_of_scope(await client.get(url(org_id, "group/members"), headers=h), org_id, VPN_USERS)
    assert_out_of_scope(
        await client.post(url(org_id, "group/members"), json={"userId": outsider_id}, headers=h),
        org_id,
        VPN_USERS,
    )
    assert_out_of_scope(
        await client.delete(url(org_id, f"group/members/{members_before[0]}"), headers=h), org_id, VPN_USERS
    )
    assert_out_of_scope(
        await client.post(url(org_id, "sync-members"), json={"dryRun": True}, headers=h), org_id, VPN_USERS
    )
    assert_out_of_scope(await client.post(url(org_id, "sync-members"), headers=h), org_id, VPN_USERS)
    status = (await client.get(url(org_id, "status"), headers=h)).json()
    assert status["health"] == "out_of_scope"
    assert status["group"] is None
    assert "equa microsoft grant-group" in status["action"]

    assert sorted(emu.group_members(VPN_USERS)) == members_before
    # The admin may still let go of the group (no Graph call).
    assert (await client.delete(url(org_id, "unlink-group"), headers=h)).status_code == 204


async def test_an_organization_creates_a_group_manages_it_and_keeps_it_after_an_unlink(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    org_id = await own_organization(client, team.member_headers)
    h = team.member_headers
    created = await client.post(url(org_id, "create-group"), json={"displayName": "Mine only"}, headers=h)
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]

    newcomer = tenant_members()[25]["id"]
    assert (
        await client.post(url(org_id, "group/members"), json={"userId": newcomer}, headers=h)
    ).status_code == 201
    assert newcomer in emu.group_members(group_id)
    assert (await client.delete(url(org_id, f"group/members/{newcomer}"), headers=h)).status_code == 204
    assert newcomer not in emu.group_members(group_id)
    assert (await client.get(url(org_id, "group"), headers=h)).status_code == 200

    assert (await client.delete(url(org_id, "unlink-group"), headers=h)).status_code == 204
    picker = (await client.get(url(org_id, "groups"), headers=h)).json()["items"]
    assert [(item["id"], item["linkable"]) for item in picker] == [(group_id, True)]
    assert (
        await client.post(url(org_id, "link-group"), json={"groupId": group_id}, headers=h)
    ).status_code == 200

    # Another organization cannot take it, even one whose admin knows the id.
    other = await client.post(
        team.url("link-group", team.other_org), json={"groupId": group_id}, headers=team.outsider_headers
    )
    assert other.status_code == 409
    assert other.json()["code"] == "microsoft_group_granted_elsewhere"
    async with session_factory() as session:
        record = await session.scalar(
            select(MicrosoftGroupGrant).where(MicrosoftGroupGrant.group_id == group_id)
        )
        assert record is not None and record.origin == "created" and str(record.organization_id) == org_id


async def test_a_retry_never_adopts_a_group_this_attempt_did_not_make(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    """A create-group retry looks its group up by alias; an alias on someone else's group is not adoption."""
    org_id = await own_organization(client, team.member_headers)
    async with session_factory() as session:
        # An earlier keyless attempt for the alias "vpn-users" that ended without a group, moments ago.
        session.add(
            GroupCreation(
                organization_id=uuid.UUID(org_id),
                idempotency_key="implicit:vpn-users",
                mail_nickname="vpn-users",
            )
        )
        await session.commit()
    response = await client.post(
        url(org_id, "create-group"),
        json={"displayName": "VPN", "mailNickname": "vpn-users"},
        headers=team.member_headers,
    )
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "microsoft_nickname_taken"
    assert await linked(session_factory, org_id) is None


async def test_create_group_stops_at_the_daily_limit_with_retry_after(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    org_id = await own_organization(client, team.member_headers)
    for _ in range(3):
        # The same name each time (aliases limit, limit-2, limit-3): a repeat is a new attempt once one finished.
        made = await client.post(
            url(org_id, "create-group"), json={"displayName": "Limit"}, headers=team.member_headers
        )
        assert made.status_code == 201, made.text
        assert (
            await client.delete(url(org_id, "unlink-group"), headers=team.member_headers)
        ).status_code == 204
    groups_before = len(emu.find_groups())
    over = await client.post(
        url(org_id, "create-group"), json={"displayName": "Limit"}, headers=team.member_headers
    )
    assert over.status_code == 429, over.text
    assert over.json()["code"] == "microsoft_group_create_limit"
    retry_after = int(over.headers["Retry-After"])
    assert 86_000 < retry_after <= 86_400
    assert len(emu.find_groups()) == groups_before
    # The limit is per organization: another one still creates.
    elsewhere = await client.post(
        team.url("create-group", team.other_org),
        json={"displayName": "Theirs"},
        headers=team.outsider_headers,
    )
    assert elsewhere.status_code == 201, elsewhere.text


async def test_hidden_membership_groups_cannot_be_granted_or_created_into_scope(
    client: httpx.AsyncClient, team: Team, make_user: Callable[..., Awaitable[User]], bearer: Any
) -> None:
    operator = await make_user(platform_admin=True)
    response = await client.post(
        "/api/v1/microsoft/grants",
        json={"organizationId": str(team.org.id), "groupId": seed_group_id("leadership-council")},
        headers=await bearer(operator),
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "microsoft_group_unlinkable"
    assert response.json()["reason"] == "hidden_membership"


async def test_grant_then_link_then_revoke_unlinks_with_an_audit_event(
    client: httpx.AsyncClient,
    team: Team,
    emu: Any,
    session_factory: Any,
    make_user: Callable[..., Awaitable[User]],
    bearer: Any,
) -> None:
    operator = await bearer(await make_user(platform_admin=True))
    grant = {"organizationId": str(team.org.id), "groupId": ENGINEERING}
    assert_out_of_scope(
        await client.post(team.url("link-group"), json={"groupId": ENGINEERING}, headers=team.admin_headers),
        team.org.id,
        ENGINEERING,
    )
    granted = await client.post("/api/v1/microsoft/grants", json=grant, headers=operator)
    assert granted.status_code == 201, granted.text
    assert granted.json()["origin"] == "operator" and granted.json()["groupName"] == "Engineering"
    again = await client.post("/api/v1/microsoft/grants", json=grant, headers=operator)
    assert again.status_code == 200

    picker = (await client.get(team.url("groups"), headers=team.admin_headers)).json()["items"]
    assert [item["displayName"] for item in picker] == ["Engineering"]
    link = await client.post(
        team.url("link-group"), json={"groupId": ENGINEERING}, headers=team.admin_headers
    )
    assert link.status_code == 200, link.text
    assert (await client.get(team.url("group/members"), headers=team.admin_headers)).status_code == 200

    # One organization per group: the grant cannot go to another organization too.
    elsewhere = await client.post(
        "/api/v1/microsoft/grants",
        json={"organizationId": str(team.other_org.id), "groupId": ENGINEERING},
        headers=operator,
    )
    assert elsewhere.status_code == 409
    assert elsewhere.json()["code"] == "microsoft_group_granted_elsewhere"

    listed = (await client.get("/api/v1/microsoft/grants", headers=operator)).json()["items"]
    assert [(g["groupId"], g["linked"]) for g in listed] == [(ENGINEERING, True)]

    members_before = sorted(emu.group_members(ENGINEERING))
    revoked = await client.request("DELETE", "/api/v1/microsoft/grants", json=grant, headers=operator)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["unlinked"] is True
    assert await linked(session_factory, team.org.id) is None
    assert sorted(emu.group_members(ENGINEERING)) == members_before  # the group itself is untouched
    assert emu.get_group(ENGINEERING) is not None
    async with session_factory() as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.organization_id == team.org.id)
                .order_by(AuditEvent.created_at)
            )
        )
    assert actions == ["group.grant", "group.link", "group.unlink", "group.revoke"]
    assert_out_of_scope(
        await client.post(team.url("link-group"), json={"groupId": ENGINEERING}, headers=team.admin_headers),
        team.org.id,
        ENGINEERING,
    )
    missing = await client.request("DELETE", "/api/v1/microsoft/grants", json=grant, headers=operator)
    assert missing.status_code == 404
    assert missing.json()["code"] == "microsoft_grant_not_found"


async def test_granting_checks_the_group_with_graph(
    client: httpx.AsyncClient, team: Team, make_user: Callable[..., Awaitable[User]], bearer: Any
) -> None:
    operator = await bearer(await make_user(platform_admin=True))
    unknown = await client.post(
        "/api/v1/microsoft/grants",
        json={"organizationId": str(team.org.id), "groupId": str(uuid.uuid4())},
        headers=operator,
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "microsoft_group_not_found"
    dynamic = await client.post(
        "/api/v1/microsoft/grants",
        json={"organizationId": str(team.org.id), "groupId": seed_group_id("dynamic")},
        headers=operator,
    )
    assert dynamic.status_code == 422
    assert dynamic.json()["reason"] == "dynamic_membership"
    no_org = await client.post(
        "/api/v1/microsoft/grants",
        json={"organizationId": str(uuid.uuid4()), "groupId": ENGINEERING},
        headers=operator,
    )
    assert no_org.status_code == 404


async def test_a_create_limit_of_zero_turns_group_creation_off(
    client: httpx.AsyncClient, team: Team, emu: Any, app: Any
) -> None:
    app.state.settings.group_create_limit = 0
    groups_before = len(emu.find_groups())
    response = await client.post(
        team.url("create-group"), json={"displayName": "No"}, headers=team.admin_headers
    )
    assert response.status_code == 429
    assert response.json()["code"] == "microsoft_group_create_limit"
    assert "turned off" in response.json()["detail"]
    assert len(emu.find_groups()) == groups_before


async def test_a_retry_adopts_only_a_group_a_link_would_accept_and_no_one_else_holds(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    """Made after the attempt began is not enough: a group created for another organization, one another
    organization has linked, or one whose membership is hidden is answered as an alias in use, never adopted."""
    theirs = await client.post(
        team.url("create-group", team.other_org),
        json={"displayName": "Theirs", "mailNickname": "theirs"},
        headers=team.outsider_headers,
    )
    assert theirs.status_code == 201, theirs.text
    emu.add_group(
        displayName="Quiet room",
        mailNickname="quiet-room",
        groupTypes=["Unified"],
        mailEnabled=True,
        securityEnabled=True,
        visibility="HiddenMembership",
    )
    shared = emu.add_group(
        displayName="Shared",
        mailNickname="shared-one",
        groupTypes=["Unified"],
        mailEnabled=True,
        securityEnabled=True,
        visibility="Private",
    )
    await force_link(session_factory, team.other_org.id, shared["id"])
    org_id = await own_organization(client, team.member_headers)
    for alias in ("theirs", "quiet-room", "shared-one"):
        async with session_factory() as session:
            # This organization's earlier keyless attempt for the alias, begun just now and never finished.
            session.add(
                GroupCreation(
                    organization_id=uuid.UUID(org_id),
                    idempotency_key=f"implicit:{alias}",
                    mail_nickname=alias,
                )
            )
            await session.commit()
        retry = await client.post(
            url(org_id, "create-group"),
            json={"displayName": alias, "mailNickname": alias},
            headers=team.member_headers,
        )
        assert retry.status_code == 409, (alias, retry.text)
        assert retry.json()["code"] == "microsoft_nickname_taken", alias
        assert await linked(session_factory, org_id) is None
    async with session_factory() as session:
        records = list(
            await session.scalars(
                select(MicrosoftGroupGrant).where(MicrosoftGroupGrant.organization_id == uuid.UUID(org_id))
            )
        )
    assert records == []
