"""Each action's result shows next to the control that caused it (in the viewport), and every part the action
changed re-renders: the members table, the flagged list, the shown sync result and the status card."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from test_web_sync import tenant_members
from web_support import WebWorld

from graph_emulator import seeds

pytestmark = pytest.mark.e2e

MARKETING = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "marketing")


async def test_feedback_lands_at_each_control_and_the_changed_parts_follow(web: WebWorld) -> None:
    members = tenant_members()
    admin = await web.user(members[12]["mail"])
    organization = await web.organization(admin, "Northwind Partners")
    page = await web.signed_in_page(admin)
    await page.set_viewport_size({"width": 1280, "height": 640})
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")

    await section.locator("input[name=groupId]").fill(MARKETING)
    await section.get_by_role("button", name="Link", exact=True).click()
    notice = section.locator("[data-role=notice]")
    await expect(notice).to_contain_text("Linked to “Marketing”")
    # The notice is said once, at the section's top, and stays in view while the section's parts load below it.
    rows = section.locator("[data-role=members] tr[data-member-id]")
    await expect(rows).to_have_count(8)
    await expect(section.locator("[data-role=exclusions]")).not_to_contain_text("Loading")
    await expect(section.locator("[data-role=flagged]")).not_to_contain_text("Loading")
    await expect(notice).to_be_in_viewport()
    for other_area in ("add-member-feedback", "settings-feedback"):
        await expect(section.locator(f"[data-role={other_area}]")).to_be_empty()
    await section.get_by_role("button", name="Sync now").click()
    result = section.locator(".sync-result[data-dry-run=false]")
    await expect(result).to_have_attribute("data-run-status", "succeeded", timeout=20_000)
    flagged_list = section.locator("[data-role=flagged-list] li")
    await expect(flagged_list).to_have_count(7)

    # Invite: the result shows at the flagged list; the members table and the sync result say "Invited".
    invited_row = flagged_list.first
    invited_name = (await invited_row.locator("strong").inner_text()).strip()
    invited_mail = (await invited_row.locator(".muted").inner_text()).strip()
    await invited_row.get_by_role("button", name=f"Invite {invited_name} to the team").click()
    feedback = section.locator("[data-role=flagged-feedback]")
    await expect(feedback).to_contain_text(f"{invited_name} is invited")
    await expect(feedback).to_be_in_viewport()
    await expect(flagged_list).to_have_count(6)
    await expect(rows.filter(has_text=invited_mail).locator("[data-role=invited]")).to_have_text("Invited")
    listed = section.locator("[data-outcome-list=flagged] li").filter(has_text=invited_mail)
    await expect(listed.locator("[data-role=flag-decision]")).to_have_text("Invited")

    # Dismiss: same place; the sync result marks the person dismissed.
    dismissed_row = flagged_list.first
    dismissed_name = (await dismissed_row.locator("strong").inner_text()).strip()
    dismissed_mail = (await dismissed_row.locator(".muted").inner_text()).strip()
    await dismissed_row.get_by_role("button", name=f"Dismiss {dismissed_name}").click()
    await expect(feedback).to_contain_text(f"{dismissed_name} is no longer flagged")
    await expect(feedback).to_be_in_viewport()
    listed = section.locator("[data-outcome-list=flagged] li").filter(has_text=dismissed_mail)
    await expect(listed.locator("[data-role=flag-decision]")).to_have_text("Dismissed")

    # Adding someone already in the group: "nothing changed", at the form.
    await section.get_by_label("Add a member by address").fill(members[13]["mail"])
    await section.get_by_role("button", name="Add", exact=True).click()
    added = section.locator("[data-role=add-member-feedback]")
    await expect(added).to_contain_text("already is a member of the group; nothing changed")
    await expect(added).to_be_in_viewport()

    # Remove: the result takes the row's place, and the status card's count follows.
    await expect(section.locator("[data-role=member-count]")).to_have_text("8")
    other = members[13]
    await rows.filter(has_text=other["mail"]).get_by_role("button", name="Remove").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    removed = section.locator("[data-role=member-feedback]")
    await expect(removed).to_contain_text(f"Removed {other['displayName']} from the group")
    await expect(removed).to_be_in_viewport()
    await expect(rows).to_have_count(7)
    await expect(section.locator("[data-role=member-count]")).to_have_text("7")

    await section.get_by_label("Sync automatically every few hours").check()
    await section.get_by_role("button", name="Save sync settings").click()
    saved = section.locator("[data-role=settings-feedback]")
    await expect(saved).to_contain_text("Sync settings saved")
    await expect(saved).to_be_in_viewport()


async def test_validation_speaks_plain_words_at_the_field(web: WebWorld) -> None:
    admin = await web.user("ada@equa.example")
    organization = await web.organization(admin, "Northwind Partners")
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=status]")).to_contain_text("Not linked")

    await section.locator("input[name=groupId]").fill("Marketing")
    await section.get_by_role("button", name="Link", exact=True).click()
    at_group_id = section.locator("[data-error-for=groupId]")
    await expect(at_group_id).to_have_text(
        "That is not a group ID: paste the Object ID from Microsoft Entra, or search by name below."
    )
    await expect(at_group_id).to_be_in_viewport()

    nickname = section.get_by_label("Mail nickname")
    at_nickname = section.locator("[data-error-for=mailNickname]")
    await nickname.fill("my team")
    await section.get_by_role("button", name="Create group").click()
    await expect(at_nickname).to_contain_text("A mail nickname cannot contain spaces: use plain letters")
    await expect(at_nickname).to_be_in_viewport()
    await expect(section.locator("[data-role=create-problem] [role=alert]")).to_have_count(0)

    await section.get_by_label("Mail nickname").fill("marketing")
    await section.get_by_role("button", name="Create group").click()
    await expect(at_nickname).to_contain_text(
        "Nickname taken: another group or mailbox in the tenant uses “marketing”"
    )
    await expect(at_nickname).to_be_in_viewport()
    assert (await web.reload_organization(organization.id)).microsoft_group is None


async def test_a_removal_confirmed_while_the_table_reloads_is_carried_out(web: WebWorld) -> None:
    """The members table reloads after other actions; a removal the admin confirms meanwhile still happens."""
    members = tenant_members()
    admin = await web.user(members[12]["mail"])
    organization = await web.organization(admin, "Northwind Partners")
    await web.link(organization.id, MARKETING, admin)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    rows = section.locator("[data-role=members] tr[data-member-id]")
    await expect(rows).to_have_count(8)

    leaving = members[13]
    await rows.filter(has_text=leaving["mail"]).get_by_role("button", name="Remove").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    # Another action's reload replaces every row while the dialog is open.
    async with page.expect_response(lambda answer: answer.url.endswith("/settings/microsoft/members")):
        await page.evaluate("() => window.htmx.trigger(document.body, 'ms-members')")
    await expect(rows.filter(has_text=leaving["mail"])).to_have_count(1)
    await dialog.get_by_role("button", name="Confirm").click()

    removed = section.locator("[data-role=member-feedback]")
    await expect(removed).to_contain_text(f"Removed {leaving['displayName']} from the group")
    await expect(rows).to_have_count(7)
    assert leaving["id"] not in web.emulator.group_members(MARKETING)
