"""MS_GROUP_SCOPE=administrative-unit:<id>: only the unit's groups (and granted or created ones) are reachable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ms_support import Team, seed_group_id, tenant_members

from equa.microsoft.fleet.cycle import run_fleet_cycle
from equa.microsoft.sync.runs import wait_for_run
from equa.organizations.models import Organization
from equa.settings import Settings
from graph_emulator import seeds
from graph_emulator.seeds import DEFAULT_TENANT_DOMAIN, stable_id

UNIT = stable_id(DEFAULT_TENANT_DOMAIN, "seed-unit", "equa-managed-groups")
OTHER_UNIT = stable_id(DEFAULT_TENANT_DOMAIN, "seed-unit", "network-access")


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    return emulator_settings("api", ms_group_scope=f"administrative-unit:{UNIT}", status_cache_seconds=0)


async def test_only_the_units_groups_are_listed_and_linkable(client: httpx.AsyncClient, team: Team) -> None:
    picker = (await client.get(team.url("groups"), headers=team.admin_headers)).json()["items"]
    listed = {item["displayName"]: item for item in picker}
    assert set(listed) == {"Engineering", "Marketing", "Project Falcon", "Leadership Council"}
    assert listed["Leadership Council"]["linkable"] is False
    assert listed["Leadership Council"]["reasonCode"] == "hidden_membership"
    searched = (
        await client.get(team.url("groups"), params={"search": "mark"}, headers=team.admin_headers)
    ).json()["items"]
    assert [item["displayName"] for item in searched] == ["Marketing"]

    vpn = seed_group_id("security")  # in the other unit, "Network access"
    refused = await client.post(team.url("link-group"), json={"groupId": vpn}, headers=team.admin_headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "microsoft_group_out_of_scope"
    assert refused.json()["action"].endswith(f"equa microsoft grant-group {team.org.id} {vpn}")
    assert "administrative unit" in refused.json()["action"]

    hidden = await client.post(
        team.url("link-group"),
        json={"groupId": seed_group_id("leadership-council")},
        headers=team.admin_headers,
    )
    assert hidden.status_code == 422 and hidden.json()["reason"] == "hidden_membership"

    marketing = seed_group_id("marketing")
    linked = await client.post(
        team.url("link-group"), json={"groupId": marketing}, headers=team.admin_headers
    )
    assert linked.status_code == 200, linked.text
    assert (await client.get(team.url("group/members"), headers=team.admin_headers)).status_code == 200


async def test_a_created_group_lands_in_the_unit(client: httpx.AsyncClient, team: Team, emu: Any) -> None:
    response = await client.post(
        team.url("create-group"), json={"displayName": "Unit made"}, headers=team.admin_headers
    )
    assert response.status_code == 201, response.text
    group_id = response.json()["id"]
    assert group_id in emu.unit_members(UNIT)
    assert group_id not in emu.unit_members(OTHER_UNIT)
    assert (await client.get(team.url("group"), headers=team.admin_headers)).status_code == 200


async def test_a_group_added_to_the_unit_becomes_reachable(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    vpn = seed_group_id("security")
    body = {"groupId": vpn}
    assert (
        await client.post(team.url("link-group"), json=body, headers=team.admin_headers)
    ).status_code == 403
    emu.add_unit_members(UNIT, [vpn])
    assert (
        await client.post(team.url("link-group"), json=body, headers=team.admin_headers)
    ).status_code == 200


async def test_creating_without_the_units_role_says_which_role_to_assign(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    """Microsoft wants the Groups Administrator role scoped to the unit, on top of the permissions, to create a
    group inside it; its 403 reads like a missing permission, so the action names the role as well."""
    emu.set_unit_roles(UNIT, [])
    groups_before = len(emu.find_groups())
    refused = await client.post(
        team.url("create-group"), json={"displayName": "Unit made"}, headers=team.admin_headers
    )
    assert refused.status_code == 502, refused.text
    problem = refused.json()
    assert problem["code"] == "microsoft_permission_missing"
    assert f"administrative unit {UNIT} also takes the Groups Administrator role" in problem["action"]
    assert "Group.Create and AdministrativeUnit.Read.All" in problem["action"]
    assert len(emu.find_groups()) == groups_before
    status = (await client.get(team.url("status"), headers=team.admin_headers)).json()
    assert status["linked"] is False

    emu.set_unit_roles(UNIT, [seeds.GROUPS_ADMINISTRATOR])
    created = await client.post(
        team.url("create-group"), json={"displayName": "Unit made"}, headers=team.admin_headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] in emu.unit_members(UNIT)


async def test_a_scheduled_sync_of_a_group_taken_out_of_the_unit_fails_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    """The scope is asked again when a queued run starts: a tenant administrator who takes the linked group out of
    the unit stops the scheduled syncs too, not only the admin's requests."""
    marketing = seed_group_id("marketing")
    linked = await client.post(
        team.url("link-group"), json={"groupId": marketing}, headers=team.admin_headers
    )
    assert linked.status_code == 200, linked.text
    async with session_factory() as session:
        organization = await session.get(Organization, team.org.id)
        organization.microsoft_auto_sync = True
        await session.commit()
    members_before = sorted(emu.group_members(marketing))
    # The team's two people are not all in Marketing: a run that went ahead would add them.
    in_group = {u["mail"].lower() for u in tenant_members() if u["id"] in members_before}
    assert {team.admin.email.lower(), team.member.email.lower()} - in_group
    emu.remove_unit_members(UNIT, [marketing])

    # The scheduler's fleet cycle: the group was never reconciled, so its full reconcile is due at once.
    report = await run_fleet_cycle(app.state.jobs)
    assert report.full_reconciles == 1 and len(report.run_ids) == 1
    run = await wait_for_run(session_factory, report.run_ids[0], 30)
    assert run is not None and run.status == "failed"
    assert run.error_code == "microsoft_group_out_of_scope"
    assert f"equa microsoft grant-group {team.org.id} {marketing}" in (run.error_action or "")
    assert sorted(emu.group_members(marketing)) == members_before


async def test_a_search_finds_a_group_deep_in_a_large_unit_on_the_first_page(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    """Sixty groups come before Marketing in the unit's order: the search is Graph's, over the whole unit."""
    fillers = [f"00000000-0000-4000-8000-{n:012d}" for n in range(60)]
    for number, group_id in enumerate(fillers):
        emu.add_group(
            id=group_id,
            displayName=f"Filler {number}",
            mailNickname=f"filler-{number}",
            groupTypes=["Unified"],
            mailEnabled=True,
            securityEnabled=False,
        )
    emu.add_unit_members(UNIT, fillers)
    first = (
        await client.get(team.url("groups"), params={"search": "mark"}, headers=team.admin_headers)
    ).json()
    assert [item["displayName"] for item in first["items"]] == ["Marketing"]
    browsing = (await client.get(team.url("groups"), headers=team.admin_headers)).json()
    assert len(browsing["items"]) == 25 and browsing["nextCursor"]
    assert {item["displayName"] for item in browsing["items"]} <= {f"Filler {n}" for n in range(60)}
