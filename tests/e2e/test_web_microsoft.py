"""The Microsoft 365 section through the browser: link by ID and by search, create, unlink, details, members and
errors with their action, against the Graph emulator."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from playwright.async_api import expect
from web_support import WebWorld, screenshot

from graph_emulator import seeds

pytestmark = pytest.mark.e2e

TENANT = seeds.DEFAULT_TENANT_DOMAIN


def seed_group_id(key: str) -> str:
    return seeds.stable_id(TENANT, "seed-group", key)


def seed_users() -> list[dict[str, Any]]:
    return list(seeds.default_seed()["tenants"][0]["users"])


def tenant_members() -> list[dict[str, Any]]:
    return [user for user in seed_users() if user["userType"] == "Member"]


async def open_settings(web: WebWorld, *, team_emails: tuple[str, ...] = ()) -> tuple[Any, Any]:
    admin = await web.user("ada@equa.example")
    members = [await web.user(email) for email in team_emails]
    organization = await web.organization(admin, "Northwind Partners", members=members)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    return page, organization


async def test_link_by_id_details_members_add_remove_and_unlink(web: WebWorld) -> None:
    members = tenant_members()
    # Two of the Marketing group's members are also in the Equa team, so the list marks them.
    marketing_member_emails = (members[12]["mail"], members[13]["mail"])
    page, organization = await open_settings(web, team_emails=marketing_member_emails)
    section = page.locator("#microsoft")
    await expect(section.get_by_role("heading", name="Microsoft 365")).to_be_visible()
    await expect(section.locator("[data-role=status]")).to_contain_text("Not linked")
    await screenshot(page, "microsoft-not-linked")

    # A malformed ID is refused next to the field; nothing is linked.
    await section.locator("input[name=groupId]").fill("not-a-guid")
    await section.get_by_role("button", name="Link", exact=True).click()
    await expect(section.locator("[data-error-for=groupId]")).not_to_be_empty()
    assert (await web.reload_organization(organization.id)).microsoft_group is None

    group_id = seed_group_id("marketing")
    await section.locator("input[name=groupId]").fill(group_id)
    await section.get_by_role("button", name="Link", exact=True).click()
    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=notice]")).to_contain_text("Linked to “Marketing”")
    await expect(section.locator("[data-role=group-name]")).to_have_text("Marketing")
    await expect(section.locator("[data-role=group-description]")).to_have_text("Marketing team")
    await expect(section.locator("[data-role=member-count]")).to_have_text("8")
    assert str((await web.reload_organization(organization.id)).microsoft_group) == group_id

    rows = section.locator("[data-role=members] tr[data-member-id]")
    await expect(rows).to_have_count(8)
    for email in marketing_member_emails:
        await expect(rows.filter(has_text=email).locator("[data-role=equa-member]")).to_have_text(
            "Equa member"
        )
    await expect(section.locator("[data-role=equa-member]")).to_have_count(2)

    # Add by address: an unknown address is explained, a tenant user is added (the emulator agrees).
    newcomer = members[0]
    await section.get_by_label("Add a member by address").fill("nobody@contoso.onmicrosoft.com")
    await section.get_by_role("button", name="Add", exact=True).click()
    await expect(section.locator("[data-role=add-member-problem] [role=alert]")).not_to_be_empty()
    await section.get_by_label("Add a member by address").fill(newcomer["mail"])
    await section.get_by_role("button", name="Add", exact=True).click()
    added = section.locator("[data-role=add-member-feedback]")
    await expect(added).to_contain_text(f"Added {newcomer['displayName']}")
    await expect(added).to_be_in_viewport()
    await expect(rows).to_have_count(9)
    await expect(section.locator("[data-role=member-count]")).to_have_text("9")
    assert newcomer["id"] in await asyncio.to_thread(web.emulator.group_members, group_id)
    await screenshot(page, "microsoft-linked-with-members")

    # Remove, after a confirmation that says the person stays in the team.
    await section.get_by_role("button", name=f"Remove {newcomer['displayName']} from the group").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("They stay in the Equa team")
    await dialog.get_by_role("button", name="Confirm").click()
    removed = section.locator("[data-role=member-feedback]")
    await expect(removed).to_contain_text(f"Removed {newcomer['displayName']}")
    await expect(removed).to_be_in_viewport()
    await expect(rows).to_have_count(8)
    assert newcomer["id"] not in await asyncio.to_thread(web.emulator.group_members, group_id)

    # Unlink: the confirmation says the group stays, and it does.
    await section.get_by_role("button", name="Unlink group").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("The group stays in Microsoft 365")
    await dialog.get_by_role("button", name="Confirm").click()
    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=notice]")).to_contain_text("still exists in Microsoft 365")
    await expect(section.locator("input[name=groupId]")).to_be_visible()
    assert (await web.reload_organization(organization.id)).microsoft_group is None
    assert await asyncio.to_thread(web.emulator.get_group, group_id) is not None


async def test_link_by_search_shows_groups_that_cannot_be_linked(web: WebWorld) -> None:
    page, organization = await open_settings(web)
    section = page.locator("#microsoft")
    search = section.get_by_label("Or search groups by name")

    await search.press_sequentially("Help", delay=30)
    helpdesk = section.locator(".group-result", has_text="Helpdesk Administrators")
    await expect(helpdesk).to_be_visible()
    await expect(helpdesk.get_by_role("button", name="Link Helpdesk Administrators")).to_be_disabled()
    await expect(helpdesk.locator(".group-result-reason")).not_to_be_empty()

    await search.fill("")
    await search.press_sequentially("Engin", delay=30)
    await section.get_by_role("button", name="Link Engineering").click()
    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=group-name]")).to_have_text("Engineering")
    await expect(section.locator("[data-role=member-count]")).to_have_text("13")
    await expect(section.locator("tr[data-member-id]").filter(has_text="Guest")).to_have_count(1)
    assert str((await web.reload_organization(organization.id)).microsoft_group) == seed_group_id(
        "engineering"
    )


async def test_create_group_is_private_and_visible_in_the_tenant(web: WebWorld) -> None:
    page, organization = await open_settings(web)
    section = page.locator("#microsoft")
    form = section.locator("[data-form=create]")
    await form.get_by_label("Group name").fill("Northwind Board")
    await form.get_by_label("Description").fill("Board of Northwind Partners")
    await expect(form.locator("[data-role=nickname-preview]")).to_contain_text("northwind-board")
    await expect(form).to_contain_text("private")
    await form.get_by_role("button", name="Create group").click()

    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=notice]")).to_contain_text("Created the private group")
    await expect(section.locator("[data-role=group-name]")).to_have_text("Northwind Board")
    found = await asyncio.to_thread(web.emulator.find_groups, displayName="Northwind Board")
    assert len(found) == 1
    assert found[0]["visibility"] == "Private"
    assert found[0]["mailNickname"] == "northwind-board"
    assert str((await web.reload_organization(organization.id)).microsoft_group) == found[0]["id"]


async def test_missing_consent_is_shown_with_its_action(web: WebWorld) -> None:
    await asyncio.to_thread(web.emulator.set_app_roles, web.emulator.client_id, [])
    await asyncio.to_thread(web.emulator.revoke_tokens)
    page, organization = await open_settings(web)
    section = page.locator("#microsoft")

    status_alert = section.locator("[data-role=status] [role=alert]")
    await expect(status_alert).to_contain_text("admin consent")
    consent = section.locator("[data-role=status] [data-role=consent-link]")
    await expect(consent).to_have_attribute("href", re.compile(r"/v2\.0/adminconsent\?client_id="))

    await section.locator("input[name=groupId]").fill(seed_group_id("marketing"))
    await section.get_by_role("button", name="Link", exact=True).click()
    problem = section.locator("[data-role=link-problem] [role=alert]")
    await expect(problem).to_contain_text("not allowed to do this in Microsoft 365")
    await expect(problem.locator(".alert-action")).not_to_be_empty()
    await expect(problem.locator("[data-role=consent-link]")).to_be_visible()
    assert (await web.reload_organization(organization.id)).microsoft_group is None
