"""The Microsoft 365 section as server-rendered partials: htmx runs under the page's strict Content-Security-Policy
(no eval, no inline script or style), sends the CSRF token, and a partial route refuses a request without it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect
from web_support import WebWorld

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
    await expect(section.locator("[data-role=flagged]")).to_contain_text("Nobody is flagged")
    assert not [text for text in problems if "Content Security Policy" in text or "unsafe-eval" in text], (
        problems
    )

    # The same change without the page's token (a request another site could forge) is refused; nothing changes.
    refused = await page.request.post(
        f"{web.url}/organizations/{organization.id}/settings/microsoft/settings", form={"autoSync": "true"}
    )
    assert refused.status == 403
    assert (await web.reload_organization(organization.id)).microsoft_auto_sync is False
