"""Multi-tenant mode: a tenant that revokes its consent shows consent_revoked with the reconnect action on the status
and on every Microsoft operation; the scheduled check notices it and scheduled syncs pause until reconnected."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenant_support import FABRIKAM, FABRIKAM_RESEARCH, browser, connect, multi_tenant_values

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.microsoft.fleet.cycle import run_fleet_cycle
from equa.microsoft.models import RunStatus
from equa.microsoft.sync.runs import wait_for_run
from equa.microsoft.tenants.health import check_tenants
from equa.organizations.models import Organization
from equa.settings import Settings
from graph_emulator import seeds
from graph_emulator.testing import EmulatorControl

PASSWORD = "correct horse battery staple"
FABRIKAM_PEOPLE = [
    u for u in seeds.generate_users(seeds.FABRIKAM_TENANT_DOMAIN, 24) if u["userType"] == "Member"
]


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings], graph_emulator_multi_tenant: Any) -> Settings:
    return emulator_settings("sync", **multi_tenant_values())


class Linked:
    def __init__(self, org: Organization, admin: User, headers: dict[str, str]) -> None:
        self.org, self.admin, self.headers = org, admin, headers

    def url(self, path: str) -> str:
        return f"/api/v1/organizations/{self.org.id}/microsoft/{path}"


@pytest.fixture
async def linked(
    app: FastAPI,
    client: httpx.AsyncClient,
    emu: Any,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> Linked:
    """Fabrikam's team, connected to Fabrikam, its Research group linked, automatic sync on."""
    admin = await make_user(FABRIKAM_PEOPLE[0]["mail"], password=PASSWORD)
    team = Linked(await make_org(admin, name="Fabrikam team"), admin, await bearer(admin))
    async with browser(app, admin.email) as page:
        await connect(emu, client, page, team.org.id, team.headers, FABRIKAM)
    response = await client.post(
        team.url("link-group"), json={"groupId": FABRIKAM_RESEARCH}, headers=team.headers
    )
    assert response.status_code == 200, response.text
    response = await client.patch(team.url("settings"), json={"autoSync": True}, headers=team.headers)
    assert response.status_code == 200, response.text
    return team


async def status_of(client: httpx.AsyncClient, team: Linked) -> dict[str, Any]:
    response = await client.get(team.url("status"), headers=team.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def scheduled_organizations(app: FastAPI) -> set[uuid.UUID]:
    """The organizations the scheduler's fleet cycle queues a run for, at a time when every group's full reconcile
    is due (so an organization left out is paused, not merely reconciled recently); waits for those runs."""
    jobs = app.state.jobs
    later = utcnow() + timedelta(seconds=jobs.settings.full_reconcile_interval_seconds * 1.1 + 60)
    report = await run_fleet_cycle(jobs, now=later)
    organizations: set[uuid.UUID] = set()
    for run_id in report.run_ids:
        run = await wait_for_run(jobs.session_factory, run_id, 30)
        assert run is not None and run.status == RunStatus.SUCCEEDED.value, run and run.error_message
        organizations.add(run.organization_id)
    return organizations


async def test_revoked_consent_answers_the_reconnect_action_everywhere_until_reconnected(
    app: FastAPI,
    client: httpx.AsyncClient,
    linked: Linked,
    emu: Any,
) -> None:
    assert await scheduled_organizations(app) == {linked.org.id}
    emu.revoke_consent(FABRIKAM)

    first = await client.get(linked.url("group"), headers=linked.headers)
    assert first.status_code == 409, first.text
    assert first.json()["code"] == "microsoft_consent_revoked"
    assert "Reconnect" in first.json()["action"]

    status = await status_of(client, linked)
    assert status["connection"] == "consent_revoked"
    assert status["tenantId"] == FABRIKAM
    assert "Reconnect" in status["action"]

    member = FABRIKAM_PEOPLE[-1]["id"]
    operations = [
        ("GET", "groups", None),
        ("GET", "group", None),
        ("GET", "group/members", None),
        ("POST", "link-group", {"groupId": FABRIKAM_RESEARCH}),
        ("POST", "group/members", {"userId": member}),
        ("DELETE", f"group/members/{member}", None),
        ("POST", "sync-members", {}),
        ("POST", "create-group", {"displayName": "New team", "mailNickname": "new-team"}),
    ]
    for method, path, body in operations:
        response = await client.request(method, linked.url(path), json=body, headers=linked.headers)
        assert response.status_code == 409, (path, response.text)
        assert response.json()["code"] == "microsoft_consent_revoked", (path, response.text)
        assert "Reconnect" in response.json()["action"]

    assert await scheduled_organizations(app) == set()  # scheduled syncs pause

    async with browser(app, linked.admin.email) as page:
        settings_page = await page.get(f"/organizations/{linked.org.id}/settings")
        assert 'data-action="reconnect"' in settings_page.text
        assert "its admin consent was revoked" in settings_page.text
        back = await connect(emu, client, page, linked.org.id, linked.headers, FABRIKAM)
        assert back.headers["location"].endswith("?microsoft=connected#microsoft")

    status = await status_of(client, linked)
    assert status["connection"] == "connected"
    assert status["linked"] is True  # the same tenant: the group stays linked
    group = await client.get(linked.url("group"), headers=linked.headers)
    assert group.status_code == 200, group.text
    assert await scheduled_organizations(app) == {linked.org.id}  # scheduled syncs resume


async def test_connect_after_a_revoked_consent_is_not_refused_as_already_connected(
    client: httpx.AsyncClient, linked: Linked, emu: Any
) -> None:
    """Nothing of this process has met the refusal yet (another process may have): the database still says
    connected, and connect asks the tenant before it answers "already connected"."""
    emu.revoke_consent(FABRIKAM)

    response = await client.post(linked.url("connect"), headers=linked.headers)
    assert response.status_code == 200, response.text
    assert "adminconsent" in response.json()["consentUrl"]
    status = await status_of(client, linked)
    assert status["connection"] == "consent_revoked"
    assert "Reconnect" in status["action"]


async def test_the_scheduled_check_notices_a_revoked_consent(
    app: FastAPI,
    client: httpx.AsyncClient,
    linked: Linked,
    emu: Any,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    assert await check_tenants(session_factory, app.state.graph) == {}
    emu.revoke_consent(FABRIKAM)
    found = await check_tenants(session_factory, app.state.graph)
    assert found == {FABRIKAM: "AADSTS7000229"}
    assert await scheduled_organizations(app) == set()
    status = await status_of(client, linked)
    assert status["connection"] == "consent_revoked"
    assert "Reconnect" in status["action"]


async def test_permissions_taken_back_are_a_revoked_consent_too(
    app: FastAPI, client: httpx.AsyncClient, linked: Linked, emu: Any
) -> None:
    """The enterprise application kept but its roles removed: new tokens carry none and Graph answers 403."""
    emu.revoke_consent(FABRIKAM, mode="permissions")
    await app.state.graph.for_tenant(FABRIKAM).tokens.invalidate()  # the next call signs in afresh
    refused = await client.get(linked.url("group/members"), headers=linked.headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "microsoft_consent_revoked"
    status = await status_of(client, linked)
    assert status["connection"] == "consent_revoked"


async def test_a_feature_the_tenant_withholds_is_not_a_revoked_consent(
    app: FastAPI, client: httpx.AsyncClient, linked: Linked, emu: Any
) -> None:
    """Restoring needs Group.ReadWrite.All, which a tenant may choose not to grant: its refusal names the
    permission, and the tenant stays connected with everything else working."""
    emu.delete_group_behind_app(FABRIKAM_RESEARCH, tenant=FABRIKAM)
    emu.set_app_roles(
        emu.client_id,
        [
            "Group.Read.All",
            "GroupMember.ReadWrite.All",
            "User.Read.All",
            "Group.Create",
            "Organization.Read.All",
        ],
        tenant=FABRIKAM,
    )
    await app.state.graph.for_tenant(FABRIKAM).tokens.invalidate()
    refused = await client.post(linked.url("restore-group"), headers=linked.headers)
    assert refused.status_code == 502, refused.text
    assert refused.json()["code"] == "microsoft_permission_missing"
    assert "Group.ReadWrite.All" in refused.json()["action"]
    status = await status_of(client, linked)
    assert status["connection"] == "connected"
    picker = await client.get(linked.url("groups"), headers=linked.headers)
    assert picker.status_code == 200, picker.text


async def test_a_change_made_in_microsoft_365_while_paused_is_caught_up_after_reconnecting(
    app: FastAPI, client: httpx.AsyncClient, linked: Linked, emu: Any
) -> None:
    """Scheduled syncs pause while the consent is revoked, but the group is still watched from where it was: a
    stranger added to it by hand meanwhile is flagged by the first cycle after reconnecting, without waiting for
    the next full reconcile."""
    jobs = app.state.jobs
    first = await run_fleet_cycle(jobs)
    assert first.full_reconciles == 1
    run = await wait_for_run(jobs.session_factory, first.run_ids[0], 30)
    assert run is not None and run.status == RunStatus.SUCCEEDED.value
    assert (await run_fleet_cycle(jobs)).run_ids == []

    emu.revoke_consent(FABRIKAM)
    stranger = FABRIKAM_PEOPLE[-1]["id"]
    with contextlib.closing(EmulatorControl(emu.base_url, emu.ca_path, tenant=FABRIKAM)) as fabrikam:
        fabrikam.add_members(FABRIKAM_RESEARCH, [stranger])  # by hand in Microsoft 365, while paused
    assert await check_tenants(jobs.session_factory, app.state.graph) == {FABRIKAM: "AADSTS7000229"}
    assert (await run_fleet_cycle(jobs)).run_ids == []  # paused

    async with browser(app, linked.admin.email) as page:
        await connect(emu, client, page, linked.org.id, linked.headers, FABRIKAM)
    caught_up = await run_fleet_cycle(jobs)
    assert len(caught_up.run_ids) == 1
    run = await wait_for_run(jobs.session_factory, caught_up.run_ids[0], 30)
    assert run is not None and run.status == RunStatus.SUCCEEDED.value, run and run.error_message
    assert run.trigger == "delta" and run.counts["flagged"] == 1
