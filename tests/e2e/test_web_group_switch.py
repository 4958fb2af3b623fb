"""Switching groups in the browser: what the section shows belongs to the group linked now."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from web_support import WebWorld

from graph_emulator import seeds

pytestmark = pytest.mark.e2e


async def test_after_unlinking_and_creating_an_empty_group_nothing_of_the_old_group_is_shown(
    web: WebWorld,
) -> None:
    marketing = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "marketing")
    admin = await web.user("ada@equa.example")
    organization = await web.organization(admin, "Switching team")
    await web.link(organization.id, marketing, by=admin)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=group-name]")).to_have_text("Marketing")

    await section.get_by_role("button", name="Sync now").click()
    result = section.locator(".sync-result[data-dry-run=false]")
    await expect(result).to_have_attribute("data-run-status", "succeeded", timeout=20_000)
    flagged = section.locator("[data-role=flagged-list] li")
    await expect(flagged).to_have_count(8)
    await section.locator("[data-role=flagged-list] [data-action=dismiss]").first.click()
    await expect(flagged).to_have_count(7)
    await expect(section.locator("[data-role=status]")).to_contain_text("Succeeded")

    await section.get_by_role("button", name="Unlink group").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    await section.locator("input[name=displayName]").fill("Fresh start")
    await section.get_by_role("button", name="Create group").click()
    await expect(section.locator("[data-role=group-name]")).to_have_text("Fresh start", timeout=20_000)
    # The new, empty group is previewed at once; the old group's flags, dismissals and sync are not shown.
    await expect(section.locator(".sync-result[data-dry-run=true]")).to_be_visible(timeout=20_000)
    await expect(section.locator("[data-role=flagged]")).to_contain_text("Nobody is flagged")
    await expect(section.locator("[data-role=dismissed]")).to_have_count(0)
    await expect(section.locator("[data-role=status]")).to_contain_text("Never")
