"""The Microsoft 365 section as server-rendered partials: htmx runs under the page's strict Content-Security-Policy
(no eval, no inline script or style), sends the CSRF token, and a partial route refuses a request without it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect
from web_support import WebWorld

from equa.db.base import utcnow
from equa.organizations.models import Organization
from equa.web.templating import CONTENT_SECURITY_POLICY
from graph_emulator import seeds

pytestmark = pytest.mark.e2e

MARKETING = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "marketing")


async def test_the_section_works_under_the_strict_policy_and_sends_the_csrf_token(web: WebWorld) -> None:
    admin = await web.user("ada@equa.example")
    organization = await web.organization(admin)
    page = await web.signed_in_page(admin)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    response = await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    config: dict[str, Any] = await page.evaluate(
        "() => ({allowEval: htmx.config.allowEval, allowScriptTags: htmx.config.allowScriptTags,"
        " includeIndicatorStyles: htmx.config.includeIndicatorStyles, version: htmx.version})"
    )
    assert config == {
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
        "version": "2.0.11",
    }

    section = page.locator("#microsoft")
    await expect(section.locator("[data-role=status]")).to_contain_text("Not linked")
    await section.locator("input[name=groupId]").fill(MARKETING)
    await section.get_by_role("button", name="Link", exact=True).click()
    await expect(section.locator("[data-role=group-name]")).to_have_text("Marketing")
    await expect(section.locator("[data-role=members] tr[data-member-id]")).to_have_count(8)
    # The link is previewed at once: the flagged list agrees with the eight members "Not in the team".
    await expect(section.locator("[data-role=preview-flagged-list] li")).to_have_count(8)
    assert not [text for text in problems if "Content Security Policy" in text or "unsafe-eval" in text], (
        problems
    )

    # The same change without the page's token (a request another site could forge) is refused; nothing changes.
    refused = await page.request.post(
        f"{web.url}/organizations/{organization.id}/settings/microsoft/settings", form={"autoSync": "true"}
    )
    assert refused.status == 403
    assert (await web.reload_organization(organization.id)).microsoft_auto_sync is False

    await section.get_by_role("button", name="Unlink group").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    await expect(section.locator("[data-role=notice]")).to_contain_text(
        "Unlinked “Marketing”. The group still exists in Microsoft 365."
    )


def _big_group(web: WebWorld, size: int) -> str:
    users = [
        web.emulator.add_user(
            displayName=f"Crew {index:02d}",
            mailNickname=f"crew{index:02d}",
            userPrincipalName=f"crew{index:02d}@{web.emulator.tenant_domain}",
        )["id"]
        for index in range(size)
    ]
    group = web.emulator.add_group(
        users, displayName="Crew", mailNickname="crew", groupTypes=["Unified"], mailEnabled=True
    )
    return str(group["id"])


async def test_more_members_are_appended_page_by_page(web: WebWorld) -> None:
    group_id = await asyncio.to_thread(_big_group, web, 30)
    admin = await web.user("ada@equa.example")
    organization = await web.organization(admin)
    await web.link(organization.id, group_id, by=admin)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    rows = section.locator("[data-role=members] tr[data-member-id]")
    await expect(rows).to_have_count(25)
    await expect(section.locator("[data-role=members-summary]")).to_have_text(
        "Showing 25 members; more below."
    )
    await section.get_by_role("button", name="Show more").click()
    await expect(rows).to_have_count(30)
    await expect(section.locator("[data-role=members-summary]")).to_have_text("Showing 30 members.")
    await expect(section.get_by_role("button", name="Show more")).to_have_count(0)


async def test_a_group_deleted_in_microsoft_365_is_reported_and_its_link_cleared(web: WebWorld) -> None:
    admin = await web.user("ada@equa.example")
    organization = await web.organization(admin)
    await web.link(organization.id, MARKETING, by=admin)
    async with web.sessions() as session:  # linked days ago: a 404 now is a deletion, not replication lag
        linked = await session.get(Organization, organization.id)
        assert linked is not None
        linked.microsoft_group_linked_at = utcnow() - timedelta(days=3)
        await session.commit()
    await asyncio.to_thread(web.emulator.delete_group_behind_app, MARKETING)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    # Loading the members finds the deletion; the service clears the link and the section offers link and create.
    await expect(section.locator("[data-role=notice]")).to_contain_text(
        "The linked group was deleted in Microsoft 365, so its link was cleared"
    )
    await expect(section.locator("[data-role=status]")).to_contain_text("Not linked")
    await expect(section.locator("input[name=groupId]")).to_be_visible()
    assert (await web.reload_organization(organization.id)).microsoft_group is None


async def test_the_missing_group_notice_restores_the_deleted_group_and_links_it_again(web: WebWorld) -> None:
    admin = await web.user("ada@equa.example")
    organization = await web.organization(admin)
    await web.link(organization.id, MARKETING, by=admin)
    await asyncio.to_thread(web.emulator.delete_group_behind_app, MARKETING)
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    section = page.locator("#microsoft")
    # Deleted right after linking: found among deleted items at once, the link is cleared and Restore is offered.
    notice = section.locator("[data-role=notice]")
    await expect(notice).to_contain_text("its link was cleared")
    await notice.get_by_role("button", name="Restore").click()
    await expect(section.locator("[data-role=notice]")).to_contain_text(
        "Restored “Marketing” from Microsoft 365's deleted items and linked it again."
    )
    await expect(section.locator("[data-role=status]")).to_contain_text("Marketing")
    assert str((await web.reload_organization(organization.id)).microsoft_group) == MARKETING
