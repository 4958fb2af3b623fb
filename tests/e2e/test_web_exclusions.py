"""People removed from the group by hand in the browser: listed under "Removed by hand", and allowed again there."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from playwright.async_api import expect
from sqlalchemy import select
from web_support import WebWorld

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.microsoft.models import MicrosoftExclusion
from equa.web.microsoft_intent_pages import EXCLUSIONS_PAGE
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


async def test_show_more_lists_the_rest_of_the_people_removed_by_hand_and_allow_again_works_on_its_rows(
    web: WebWorld,
) -> None:
    marketing = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "marketing")
    admin = await web.user("ada@equa.example")
    removed = [
        await web.user(f"removed-{i:02}@equa.example", password=None) for i in range(EXCLUSIONS_PAGE + 3)
    ]
    organization = await web.organization(admin, "Many removed", members=removed)
    await web.link(organization.id, marketing, by=admin)
    # Removed by hand one after another, a minute apart: the newest is listed first, the oldest last.
    start = utcnow() - timedelta(hours=1)
    async with web.sessions() as session:
        for i, person in enumerate(removed):
            session.add(
                MicrosoftExclusion(
                    organization_id=organization.id,
                    user_id=person.id,
                    excluded_by=admin.id,
                    created_at=start + timedelta(minutes=i),
                )
            )
        await session.commit()
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings#microsoft")
    exclusions = page.locator("#microsoft [data-role=exclusions]")
    listed = exclusions.locator("[data-role=exclusions-list] li")
    await expect(listed).to_have_count(EXCLUSIONS_PAGE)
    await expect(exclusions.locator("[data-role=exclusions-summary]")).to_contain_text("more below")
    oldest = removed[0]
    await expect(exclusions.locator(f"li[data-user-id='{oldest.id}']")).to_have_count(0)

    await exclusions.locator("[data-action=more-exclusions]").click()
    await expect(listed).to_have_count(len(removed))
    await expect(exclusions.locator("[data-action=more-exclusions]")).to_have_count(0)
    await expect(exclusions.locator("[data-role=exclusions-summary]")).to_have_text(
        f"Showing {len(removed)} people."
    )
    await expect(listed.last).to_contain_text(
        oldest.email
    )  # nobody twice, nobody left out: in order to the end

    await exclusions.get_by_role("button", name=f"Allow {oldest.display_name} again").click()
    await expect(exclusions.locator("[data-role=exclusions-feedback]")).to_contain_text("allowed again")
    await expect(exclusions.locator(f"li[data-user-id='{oldest.id}']")).to_have_count(0)
    await expect(listed).to_have_count(EXCLUSIONS_PAGE)  # the list starts again from its first page
    await exclusions.locator("[data-action=more-exclusions]").click()
    await expect(listed).to_have_count(len(removed) - 1)
    async with web.sessions() as session:
        still_removed = set(
            await session.scalars(
                select(User.email)
                .join(MicrosoftExclusion, MicrosoftExclusion.user_id == User.id)
                .where(MicrosoftExclusion.organization_id == organization.id)
            )
        )
    assert still_removed == {person.email for person in removed[1:]}
