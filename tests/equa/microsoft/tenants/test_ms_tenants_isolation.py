"""Multi-tenant mode: two organizations in two tenants each use their own group and never reach the other tenant;
Graph tokens are asked once per tenant, however many organizations share it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ms_support import seed_group_id, tenant_members
from tenant_support import (
    CONTOSO,
    FABRIKAM,
    FABRIKAM_RESEARCH,
    FABRIKAM_SALES,
    browser,
    connect,
    multi_tenant_values,
)

from equa.accounts.models import User
from equa.organizations.models import Organization
from equa.settings import Settings
from graph_emulator import seeds

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings], graph_emulator_multi_tenant: Any) -> Settings:
    return emulator_settings("sync", **multi_tenant_values())


def fabrikam_members() -> list[dict[str, Any]]:
    users = seeds.generate_users(seeds.FABRIKAM_TENANT_DOMAIN, 24)
    return [u for u in users if u["userType"] == "Member"]


class Org:
    def __init__(self, org: Organization, admin: User, headers: dict[str, str]) -> None:
        self.org, self.admin, self.headers = org, admin, headers

    def url(self, path: str) -> str:
        return f"/api/v1/organizations/{self.org.id}/microsoft/{path}"


@pytest.fixture
async def two_orgs(
    app: FastAPI,
    client: httpx.AsyncClient,
    emu: Any,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> tuple[Org, Org]:
    """Contoso's team (connected to Contoso) and Fabrikam's team (connected to Fabrikam)."""
    orgs = []
    for people, name, tenant in (
        (tenant_members(), "Contoso team", CONTOSO),
        (fabrikam_members(), "Fabrikam team", FABRIKAM),
    ):
        admin = await make_user(people[0]["mail"], password=PASSWORD)
        member = await make_user(people[2]["mail"])
        org = Org(await make_org(admin, name=name, members=[member]), admin, await bearer(admin))
        async with browser(app, admin.email) as page:
            back = await connect(emu, client, page, org.org.id, org.headers, tenant)
            assert back.headers["location"].endswith("?microsoft=connected#microsoft")
        orgs.append(org)
    return orgs[0], orgs[1]


async def ids_listed(client: httpx.AsyncClient, org: Org, search: str | None = None) -> set[str]:
    params = {"search": search} if search else {}
    response = await client.get(org.url("groups"), params=params, headers=org.headers)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def member_ids(client: httpx.AsyncClient, org: Org) -> set[str]:
    response = await client.get(org.url("group/members"), headers=org.headers)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def test_each_organization_reaches_only_its_own_tenant(
    app: FastAPI, client: httpx.AsyncClient, two_orgs: tuple[Org, Org], emu: Any
) -> None:
    contoso, fabrikam = two_orgs
    engineering = seed_group_id("engineering")

    # The picker lists the organization's own tenant only, whatever is searched.
    contoso_groups = await ids_listed(client, contoso)
    fabrikam_groups = await ids_listed(client, fabrikam)
    assert engineering in contoso_groups and FABRIKAM_RESEARCH not in contoso_groups
    assert {FABRIKAM_RESEARCH, FABRIKAM_SALES} <= fabrikam_groups and engineering not in fabrikam_groups
    assert await ids_listed(client, contoso, "Fabrikam") == set()

    # Link by id: the other tenant's group does not exist for it.
    across = await client.post(
        contoso.url("link-group"), json={"groupId": FABRIKAM_RESEARCH}, headers=contoso.headers
    )
    assert across.status_code == 404, across.text
    across = await client.post(
        fabrikam.url("link-group"), json={"groupId": engineering}, headers=fabrikam.headers
    )
    assert across.status_code == 404, across.text
    own = await client.post(contoso.url("link-group"), json={"groupId": engineering}, headers=contoso.headers)
    assert own.status_code == 200, own.text
    own = await client.post(
        fabrikam.url("link-group"), json={"groupId": FABRIKAM_RESEARCH}, headers=fabrikam.headers
    )
    assert own.status_code == 200, own.text
    assert own.json()["displayName"] == "Fabrikam Research"
    async with browser(
        app, fabrikam.admin.email
    ) as page:  # the settings page's status card reads its tenant too
        card = await page.get(f"/organizations/{fabrikam.org.id}/settings/microsoft/status")
        assert card.status_code == 200
        assert "Fabrikam Research" in card.text and "tag-ok" in card.text, card.text

    # Add: a person of the other tenant cannot be added; one of its own can.
    stranger = tenant_members()[5]["id"]
    refused = await client.post(
        fabrikam.url("group/members"), json={"userId": stranger}, headers=fabrikam.headers
    )
    assert refused.status_code in (404, 422), refused.text
    newcomer = fabrikam_members()[-1]["id"]
    added = await client.post(
        fabrikam.url("group/members"), json={"userId": newcomer}, headers=fabrikam.headers
    )
    assert added.status_code in (200, 201), added.text
    emu.replicate_now()
    assert newcomer in await member_ids(client, fabrikam)

    # Remove: the organization's own group, in its own tenant.
    removed = await client.delete(fabrikam.url(f"group/members/{newcomer}"), headers=fabrikam.headers)
    assert removed.status_code == 204, removed.text
    emu.replicate_now()
    assert newcomer not in await member_ids(client, fabrikam)

    # Sync: each team lands in its own group.
    for org, people in ((contoso, tenant_members()), (fabrikam, fabrikam_members())):
        run = await client.post(org.url("sync-members?wait=30"), json={}, headers=org.headers)
        assert run.status_code == 200, run.text
        assert run.json()["status"] in ("succeeded", "partial"), run.json()
        emu.replicate_now()
        members = await member_ids(client, org)
        assert people[0]["id"] in members and people[2]["id"] in members
    assert not (await member_ids(client, contoso)) & {u["id"] for u in fabrikam_members()}


async def test_token_requests_are_one_per_tenant_however_many_organizations_share_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    two_orgs: tuple[Org, Org],
    emu: Any,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    contoso, fabrikam = two_orgs
    admin = await make_user("third@example.com", password=PASSWORD)
    third = Org(await make_org(admin, name="Another Contoso team"), admin, await bearer(admin))
    async with browser(app, admin.email) as page:
        await connect(emu, client, page, third.org.id, third.headers, CONTOSO)
    for org in (contoso, fabrikam, third, contoso, fabrikam, third):
        assert await ids_listed(client, org)
        status = (await client.get(org.url("status"), headers=org.headers)).json()
        assert status["connection"] == "connected"
    by_tenant = emu.token_requests_by_tenant()
    assert by_tenant.get(CONTOSO) == 1, by_tenant
    assert by_tenant.get(FABRIKAM) == 1, by_tenant
    assert set(by_tenant) <= {CONTOSO, FABRIKAM}
    clients = app.state.graph.tenant_clients
    assert clients is not None and len(clients) == 2
