"""The section's lists: members sorted by name, a specific question before removing yourself, dismissed people
listed with Undo, and the site's icon."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import expect
from test_web_sync import tenant_members
from web_support import WebWorld

from graph_emulator import seeds

pytestmark = pytest.mark.e2e

MARKETING = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "marketing")


async def test_the_favicon_is_served(web: WebWorld) -> None:
    async with httpx.AsyncClient(verify=False) as client:
        response = await client.get(f"{web.url}/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.startswith("<svg")


async def test_members_sorted_removing_yourself_asks_and_a_dismissal_can_be_undone(web: WebWorld) -> None:
    members = tenant_members()
    me, owner = members[13], members[12]  # members of the Marketing group; the second owns it
    admin = await web.user(me["mail"])
    organization = await web.organization(admin, "Northwind Partners")
    await web.link(organization.id, MARKETING, by=admin)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")

    rows = section.locator("[data-role=members] tr[data-member-id]")
    await expect(rows).to_have_count(8)
    names = await rows.locator(".person-name").all_inner_texts()
    assert names == sorted(names, key=str.casefold)

    mine = rows.filter(has_text=me["mail"]).get_by_role("button", name="Remove")
    await expect(mine).to_have_attribute(
        "hx-confirm",
        f"Remove yourself ({me['displayName']}) from the Microsoft 365 group? You lose access to its conversations and files; you stay in the Equa team and an admin can add you back.",
    )
    owner_row = rows.filter(has_text=owner["mail"])
    await expect(owner_row.locator("[data-role=owner]")).to_have_text("Owner")
    await expect(section.locator("[data-role=members] [data-role=owner]")).to_have_count(1)
    await expect(owner_row.get_by_role("button", name="Remove")).to_have_attribute(
        "hx-confirm",
        f"Remove {owner['displayName']}, an owner of the group, from its members? They stay an owner in Microsoft"
        " 365 (change owners in Microsoft 365) and stay in the Equa team.",
    )
    other = members[14]
    await expect(rows.filter(has_text=other["mail"]).get_by_role("button", name="Remove")).to_have_attribute(
        "hx-confirm",
        f"Remove {other['displayName']} from the Microsoft 365 group? They stay in the Equa team.",
    )
    await mine.click()
    await expect(page.get_by_role("dialog")).to_contain_text("Remove yourself")
    await page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    await expect(rows).to_have_count(8)

    await section.get_by_role("button", name="Sync now").click()
    result = section.locator(".sync-result[data-dry-run=false]")
    await expect(result).to_have_attribute("data-run-status", "succeeded", timeout=20_000)
    flagged_list = section.locator("[data-role=flagged-list] li")
    await expect(flagged_list).to_have_count(7)
    first = (await flagged_list.first.locator("strong").inner_text()).strip()
    await flagged_list.first.get_by_role("button", name=f"Dismiss {first}").click()
    await expect(flagged_list).to_have_count(6)
    dismissed = section.locator("[data-role=dismissed]")
    await expect(dismissed.locator("summary")).to_have_text("Dismissed (1)")
    await dismissed.locator("summary").click()
    await dismissed.get_by_role("button", name=f"Undo dismissing {first}").click()
    await expect(flagged_list).to_have_count(7)
    await expect(section.locator("[data-role=dismissed]")).to_have_count(0)
