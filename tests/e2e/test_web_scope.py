"""The group picker in the `granted` scope (the default): only the organization's own groups, and an attempt at
another group shows what to do."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect
from web_support import WebWorld, screenshot

from equa.microsoft.grants import grant_group
from equa.microsoft.graph import build_graph_client
from equa.settings import load_settings
from graph_emulator import seeds

pytestmark = pytest.mark.e2e

TENANT = seeds.DEFAULT_TENANT_DOMAIN


def seed_group_id(key: str) -> str:
    return seeds.stable_id(TENANT, "seed-group", key)


async def grant(web: WebWorld, organization_id: object, group_id: str) -> None:
    emu = web.emulator
    settings = load_settings(
        ms_auth_enabled=True,
        ms_auth_client_id=emu.client_id,
        ms_auth_tenant_id=emu.tenant_id,
        ms_auth_secret=emu.client_secret,
        ms_authority_host=emu.base_url,
        ms_graph_url=emu.graph_url,
        ms_ca_bundle=emu.ca_path,
    )
    async with build_graph_client(settings) as graph, web.sessions() as session:
        await grant_group(session, graph, organization_id, group_id, None)  # type: ignore[arg-type]
        await session.commit()


async def test_the_picker_lists_only_granted_groups_and_an_out_of_scope_link_shows_the_action(
    web: WebWorld,
) -> None:
    admin = await web.user("ada@equa.example")
    organization = await web.organization(admin, "Northwind Partners")
    await grant(web, organization.id, seed_group_id("engineering"))
    page = await web.signed_in_page(admin, base=web.url_granted)
    await page.goto(f"{web.url_granted}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=scope-note]")).to_contain_text(
        "Groups created here, and groups an operator granted to this organization"
    )

    # Listed at once, without typing: the one granted group, nothing else of the tenant.
    results = section.locator(".group-result")
    await expect(results).to_have_count(1)
    await expect(results.first).to_contain_text("Engineering")
    await screenshot(page, "microsoft-granted-picker")
    search = section.get_by_label("Or pick one of these groups (type to filter)")
    await search.press_sequentially("VPN", delay=30)
    await expect(section.locator("[data-role=search-status]")).to_contain_text("No group you can link")
    await expect(results).to_have_count(0)

    # Linking another tenant group by its id is refused with the operator's command to grant it.
    vpn = seed_group_id("security")
    await section.locator("input[name=groupId]").fill(vpn)
    await section.get_by_role("button", name="Link", exact=True).click()
    problem = section.locator("[data-role=link-problem]")
    await expect(problem).to_contain_text(
        f"Ask an operator to grant it: equa microsoft grant-group {organization.id} {vpn}"
    )
    assert (await web.reload_organization(organization.id)).microsoft_group is None

    await search.fill("")
    await expect(results).to_have_count(1)
    await section.get_by_role("button", name="Link Engineering").click()
    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=group-name]")).to_have_text("Engineering")
    assert str((await web.reload_organization(organization.id)).microsoft_group) == seed_group_id(
        "engineering"
    )
    assert await asyncio.to_thread(web.emulator.get_group, vpn) is not None
