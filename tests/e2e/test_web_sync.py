"""Sync through the browser: preview (nothing written), sync now with progress and result, flagged members invited
or dismissed, and the sync settings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect
from web_support import WebWorld, screenshot

from graph_emulator import seeds

pytestmark = pytest.mark.e2e


def tenant_members() -> list[dict[str, Any]]:
    users = seeds.default_seed()["tenants"][0]["users"]
    return [user for user in users if user["userType"] == "Member"]


async def test_preview_then_sync_then_invite_a_flagged_member(web: WebWorld) -> None:
    members = tenant_members()
    marketing = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "marketing")
    in_group_and_team = [members[12], members[13]]
    to_add = [members[0], members[1]]
    flagged = members[14:20]

    admin = await web.user("ada@equa.example")
    team = [await web.user(user["mail"]) for user in in_group_and_team + to_add]
    organization = await web.organization(admin, "Northwind Partners", members=team)
    await web.link(organization.id, marketing, by=admin)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=group-name]")).to_have_text("Marketing")

    writes_before = (await asyncio.to_thread(web.emulator.stats))["writes"]
    await section.get_by_role("button", name="Preview").click()
    result = section.locator(".sync-result[data-dry-run=true]")
    await expect(result).to_contain_text("Preview: nothing was changed in Microsoft 365")
    await expect(result.locator("[data-outcome=added]")).to_contain_text("2")
    await expect(result.locator("[data-outcome=flagged]")).to_contain_text("6")
    await expect(result.locator("[data-outcome=notInTenant]")).to_contain_text("1")
    for user in to_add:
        await expect(result.locator("[data-outcome-list=added]")).to_contain_text(user["mail"])
    await expect(result.locator("[data-outcome-list=notInTenant]")).to_contain_text("ada@equa.example")
    assert (await asyncio.to_thread(web.emulator.stats))["writes"] == writes_before
    group_members = set(await asyncio.to_thread(web.emulator.group_members, marketing))
    assert not {user["id"] for user in to_add} & group_members

    await section.get_by_role("button", name="Sync now").click()
    result = section.locator(".sync-result[data-dry-run=false]")
    await expect(result).to_have_attribute("data-run-status", "succeeded", timeout=20_000)
    await expect(result.locator("[data-outcome=added]")).to_contain_text("2")
    group_members = set(await asyncio.to_thread(web.emulator.group_members, marketing))
    assert {user["id"] for user in to_add} <= group_members
    await expect(section.locator("[data-role=member-count]")).to_have_text("10")

    flagged_list = section.locator("[data-role=flagged-list] li")
    await expect(flagged_list).to_have_count(len(flagged))
    await screenshot(page, "microsoft-sync-result")

    invited = flagged[0]
    await section.get_by_role("button", name=f"Invite {invited['displayName']} to the team").click()
    feedback = section.locator("[data-role=flagged-feedback]")
    await expect(feedback).to_contain_text("is invited. Send them this link")
    await expect(feedback).to_contain_text("/invitations/inv_")
    await expect(feedback).to_be_in_viewport()
    await expect(flagged_list).to_have_count(len(flagged) - 1)
    assert invited["mail"].lower() in await web.invitation_emails(organization.id)

    dismissed = flagged[1]
    await section.get_by_role("button", name=f"Dismiss {dismissed['displayName']}").first.click()
    await expect(flagged_list).to_have_count(len(flagged) - 2)
    assert dismissed["mail"].lower() not in await web.team_emails(organization.id)

    await section.get_by_label("Sync automatically every few hours").check()
    await section.get_by_role("button", name="Save sync settings").click()
    saved = section.locator("[data-role=settings-feedback]")
    await expect(saved).to_contain_text("Sync settings saved")
    await expect(saved).to_be_in_viewport()
    assert (await web.reload_organization(organization.id)).microsoft_auto_sync is True
