"""People removed from the group by hand in the browser: listed under "Removed by hand", and allowed again there."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect
from web_support import WebWorld

from graph_emulator import seeds

pytestmark = pytest.mark.e2e


async def test_a_team_member_removed_by_hand_is_listed_and_can_be_allowed_again(web: WebWorld) -> None:
    members = [u for u in seeds.default_seed()["tenants"][0]["users"] if u["userType"] == "Member"]
    marketing = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "marketing")
    person = members[12]  # in the Marketing group
    admin = await web.user("ada@equa.example")
    teammate = await web.user(person["mail"])
    organization = await web.organization(admin, "Intent team", members=[teammate])
    await web.link(organization.id, marketing, by=admin)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    exclusions = section.locator("[data-role=exclusions]")
    await expect(exclusions).to_contain_text("Nobody")

    await section.locator(f"tr[data-member-id='{person['id']}'] [data-action=remove-member]").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    listed = exclusions.locator("[data-role=exclusions-list] li")
    await expect(listed).to_have_count(1)
    await expect(listed).to_contain_text(person["mail"])

    await exclusions.locator("[data-action=allow-again]").click()
    feedback = exclusions.locator("[data-role=exclusions-feedback]")
    await expect(feedback).to_contain_text("allowed again")
    await expect(feedback).to_be_in_viewport()
    await expect(listed).to_have_count(0)
    # The next sync adds them back.
    await section.get_by_role("button", name="Sync now").click()
    result = section.locator(".sync-result[data-dry-run=false]")
    await expect(result).to_have_attribute("data-run-status", "succeeded", timeout=20_000)
    await expect(result.locator("[data-outcome=added]")).to_contain_text("1")
    assert person["id"] in await asyncio.to_thread(web.emulator.group_members, marketing)
