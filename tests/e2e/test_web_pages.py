"""Sign in and out, my organizations, General and Team settings, and where the Microsoft 365 section must be absent."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect
from web_support import PASSWORD, WebWorld

pytestmark = pytest.mark.e2e

LOGIN_WITH_NEXT = re.compile(r"/login\?next=")


async def test_sign_in_shows_errors_then_signs_in_and_out(web: WebWorld) -> None:
    admin = await web.user("ada@equa.example")
    organization = await web.organization(admin, "Northwind Partners")
    page = await web.page()

    await page.goto(f"{web.url}/organizations/{organization.id}/settings")
    await page.wait_for_url(LOGIN_WITH_NEXT)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#error-email")).to_have_text("Enter your email address.")
    await expect(page.locator("#error-password")).to_have_text("Enter your password.")

    await page.get_by_label("Email address").fill(admin.email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("The email or password is not correct")

    # Keyboard only: type, then Enter submits; the person lands where they were going.
    await page.get_by_label("Email address").fill(admin.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_url(f"**/organizations/{organization.id}/settings")
    await expect(page.get_by_role("heading", name="Northwind Partners", level=1)).to_be_visible()

    await page.get_by_role("link", name="Equa").click()
    await expect(page.get_by_role("link", name="Northwind Partners", exact=True)).to_be_visible()
    await expect(page.get_by_text("Admin", exact=False).first).to_be_visible()

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/login")
    await page.goto(f"{web.url}/organizations")
    await page.wait_for_url(LOGIN_WITH_NEXT)


async def test_general_and_team_settings(web: WebWorld) -> None:
    admin = await web.user("ada@equa.example")
    colleague = await web.user("grace@equa.example")
    organization = await web.organization(admin, "Northwind Partners", members=[colleague])
    page = await web.signed_in_page(admin)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings")

    general = page.locator("#general")
    await general.get_by_label("Organization name").fill("   ")
    await general.get_by_role("button", name="Save").click()
    await expect(page.locator("#general [data-error-for=name]")).to_have_text("Enter a name.")
    await page.locator("#general").get_by_label("Organization name").fill("Northwind Traders")
    await page.locator("#general").get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("name was saved")
    await expect(page.get_by_role("heading", name="Northwind Traders", level=1)).to_be_visible()
    assert (await web.reload_organization(organization.id)).name == "Northwind Traders"

    team = page.locator("#team")
    await team.get_by_label("Email address").fill("not-an-address")
    await team.get_by_role("button", name="Invite").click()
    await expect(page.locator("#team [data-error-for=email]")).to_contain_text("not a valid email address")
    await page.locator("#team").get_by_label("Email address").fill("grace@equa.example")
    await page.locator("#team").get_by_role("button", name="Invite").click()
    await expect(page.locator("#team [data-error-for=email]")).to_contain_text("already a member")

    await page.locator("#team").get_by_label("Email address").fill("linus@equa.example")
    await page.locator("#team").get_by_role("button", name="Invite").click()
    await expect(page.get_by_role("status")).to_contain_text("Invitation made")
    await expect(page.locator("[data-role=pending-invitations]")).to_contain_text("linus@equa.example")
    assert "linus@equa.example" in await web.invitation_emails(organization.id)
    assert "linus@equa.example" not in await web.team_emails(organization.id)
    link = (await page.locator("[data-role=invitation-link]").inner_text()).strip()

    # The person opens the link in their own browser, chooses a name and password, and is in.
    newcomer = await web.page()
    await newcomer.goto(link)
    await newcomer.get_by_label("Your name").fill("Linus T")
    await newcomer.get_by_label("Choose a password").fill("a long passphrase 1")
    await newcomer.get_by_label("The same password again").fill("a long passphrase 1")
    await newcomer.get_by_role("button", name="Create my account and join").click()
    await expect(newcomer).to_have_url(f"{web.url}/organizations/{organization.id}/settings")
    assert "linus@equa.example" in await web.team_emails(organization.id)
    await page.goto(f"{web.url}/organizations/{organization.id}/settings")

    await page.get_by_label("Role of grace@equa.example").select_option("admin")
    await page.locator("#team tr", has_text="grace@equa.example").get_by_role("button", name="Change").click()
    await expect(page.get_by_role("status")).to_contain_text("role was changed")
    await expect(page.get_by_label("Role of grace@equa.example")).to_have_value("admin")

    # Removing asks first; Cancel keeps the person.
    await page.get_by_role("button", name="Remove linus@equa.example").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Remove linus@equa.example")
    await dialog.get_by_role("button", name="Cancel").click()
    assert "linus@equa.example" in await web.team_emails(organization.id)
    await page.get_by_role("button", name="Remove linus@equa.example").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    await expect(page.get_by_role("status")).to_contain_text("removed from the team")
    assert "linus@equa.example" not in await web.team_emails(organization.id)


async def test_microsoft_section_absent_for_members_and_when_the_feature_is_off(web: WebWorld) -> None:
    admin = await web.user("ada@equa.example")
    member = await web.user("grace@equa.example")
    organization = await web.organization(admin, "Northwind Partners", members=[member])

    member_page = await web.signed_in_page(member)
    response = await member_page.goto(f"{web.url}/organizations/{organization.id}/settings")
    assert response is not None and response.status == 200
    html = await member_page.content()
    assert "Microsoft 365" not in html and 'id="microsoft"' not in html
    await expect(member_page.locator("#team")).to_be_visible()
    # A member reads the team but cannot change it.
    await expect(member_page.get_by_role("button", name="Invite")).to_have_count(0)
    fragment = await member_page.request.get(f"{web.url}/organizations/{organization.id}/settings/microsoft")
    assert fragment.status == 404

    admin_off = await web.signed_in_page(admin, base=web.url_disabled)
    await admin_off.goto(f"{web.url_disabled}/organizations/{organization.id}/settings")
    html = await admin_off.content()
    assert "Microsoft 365" not in html and "microsoft.js" not in html
    fragment = await admin_off.request.get(
        f"{web.url_disabled}/organizations/{organization.id}/settings/microsoft"
    )
    assert fragment.status == 404

    admin_on = await web.signed_in_page(admin)
    await admin_on.goto(f"{web.url}/organizations/{organization.id}/settings")
    await expect(admin_on.get_by_role("heading", name="Microsoft 365")).to_be_visible()


async def test_other_organizations_are_not_found_and_layout_fits_a_phone(web: WebWorld) -> None:
    admin = await web.user("ada@equa.example")
    stranger = await web.user("eve@equa.example")
    organization = await web.organization(admin, "Northwind Partners")
    await web.organization(stranger, "Elsewhere Inc")

    page = await web.signed_in_page(stranger, width=375)
    response = await page.goto(f"{web.url}/organizations/{organization.id}/settings")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("alert")).to_contain_text(
        "does not exist, or you are not one of its members"
    )

    phone = await web.signed_in_page(admin, width=375)
    await phone.goto(f"{web.url}/organizations/{organization.id}/settings")
    await expect(phone.get_by_role("heading", name="Microsoft 365")).to_be_visible()
    overflow = await phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
