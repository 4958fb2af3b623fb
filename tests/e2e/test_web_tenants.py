"""Multi-tenant mode in a browser: Connect Microsoft 365, the tenant administrator's sign-in and Accept at the
(emulated) Microsoft consent page, the way back to the settings page with the tenant's name; Cancel shows the
action; Disconnect."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect
from web_support import PASSWORD, WebWorld, screenshot

from graph_emulator import seeds

pytestmark = pytest.mark.e2e


async def signed_in(web: WebWorld, base: str, email: str) -> Any:
    # The emulator's pages are served over https with the test CA, which this browser does not know.
    context = await web.browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
    context.set_default_timeout(15_000)
    web.contexts.append(context)
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/organizations")
    return page


async def consent_as_admin(page: Any, tenant: str, *, accept: bool) -> None:
    login, password = seeds.DEMO_ADMINS[tenant]
    # htmx navigates to Microsoft's page after the click: wait for it (the settings page has address fields too).
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Email", exact=True).fill(login)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Permissions requested")).to_be_visible()
    await page.get_by_role("button", name="Accept" if accept else "Cancel").click()


async def test_connect_microsoft_365_round_trip_and_cancel(web: WebWorld, multi_tenant_app: Any) -> None:
    await asyncio.to_thread(web.emulator.reset, seeds.multi_tenant_seed())
    base = multi_tenant_app.base_url
    admin = await web.user()
    organization = await web.organization(admin, name="Fabrikam partners")
    page = await signed_in(web, base, admin.email)
    settings_url = f"{base}/organizations/{organization.id}/settings"
    await page.goto(settings_url)
    section = page.locator("#microsoft")
    # Not connected: only the button that starts the round trip, no group controls yet.
    await expect(section.get_by_role("button", name="Connect Microsoft 365")).to_be_visible()
    await expect(section.locator('[data-block="not-linked"]')).to_have_count(0)

    # Cancel at Microsoft: back on the settings page with what to do.
    await section.get_by_role("button", name="Connect Microsoft 365").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await consent_as_admin(page, seeds.FABRIKAM_TENANT_ID, accept=False)
    await page.wait_for_url(f"{settings_url}?microsoft_error=consent_declined#microsoft")
    problem = page.locator('[data-role="consent-problem"]')
    await expect(problem).to_contain_text("the consent was cancelled or declined")
    await expect(problem).to_contain_text("choose Accept")

    # Accept: back with the tenant's name and domain, and the group controls.
    await page.locator("#microsoft").get_by_role("button", name="Connect Microsoft 365").click()
    await consent_as_admin(page, seeds.FABRIKAM_TENANT_ID, accept=True)
    await page.wait_for_url(f"{settings_url}?microsoft=connected#microsoft")
    section = page.locator("#microsoft")
    await expect(section.locator('[data-role="tenant-name"]')).to_have_text("Fabrikam")
    await expect(section.locator('[data-role="tenant-domain"]')).to_have_text(seeds.FABRIKAM_TENANT_DOMAIN)
    await expect(section.locator('[data-role="notice"]')).to_contain_text("Microsoft 365 is connected.")
    await expect(section.locator('[data-block="not-linked"]')).to_be_visible()
    await screenshot(page, "microsoft-tenant-connected")

    # Disconnect: back to the button.
    await section.get_by_role("button", name="Disconnect").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    await expect(
        page.locator("#microsoft").get_by_role("button", name="Connect Microsoft 365")
    ).to_be_visible()
    await expect(page.locator("#microsoft [data-role='notice']")).to_contain_text("Disconnected “Fabrikam”")
