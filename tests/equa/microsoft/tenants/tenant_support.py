"""Helpers of the multi-tenant tests: settings for multi-tenant mode, a signed-in browser, the consent round trip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI

from graph_emulator import seeds

CONTOSO = seeds.DEFAULT_TENANT_ID
FABRIKAM = seeds.FABRIKAM_TENANT_ID
PUBLIC_URL = "http://testserver"
FABRIKAM_RESEARCH = seeds.stable_id(seeds.FABRIKAM_TENANT_DOMAIN, "seed-group", "research")
FABRIKAM_SALES = seeds.stable_id(seeds.FABRIKAM_TENANT_DOMAIN, "seed-group", "sales")
PASSWORD = "correct horse battery staple"


def multi_tenant_values() -> dict[str, Any]:
    """Settings overrides of multi-tenant mode (MS_GROUP_SCOPE left unset: each organization's own tenant)."""
    return {"ms_auth_tenant_id": "organizations", "public_url": PUBLIC_URL}


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Browser:
    """An admin signed in with a browser session (the consent callback is a page, not an API call)."""

    http: httpx.AsyncClient
    csrf: str

    async def get(self, url: str) -> httpx.Response:
        return await self.http.get(url.removeprefix(PUBLIC_URL))


@asynccontextmanager
async def browser(app: FastAPI, email: str, password: str = PASSWORD) -> AsyncIterator[Browser]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        response = await http.post("/api/v1/session", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        yield Browser(http, response.json()["csrfToken"])


async def consent_location(
    emu: Any,
    client: httpx.AsyncClient,
    org_id: object,
    headers: dict[str, str],
    tenant: str,
    *,
    accept: bool = True,
) -> str:
    """Ask Equa for the consent address, go through the emulator's consent pages as the tenant's administrator,
    and answer where Microsoft sends the browser back to (Equa's callback, with its query)."""
    response = await client.post(f"/api/v1/organizations/{org_id}/microsoft/connect", headers=headers)
    assert response.status_code == 200, response.text
    login, password = emu.tenant_admin(tenant)
    location: str = await asyncio.to_thread(
        emu.complete_admin_consent, response.json()["consentUrl"], login, password, accept=accept
    )
    return location


async def connect(
    emu: Any,
    client: httpx.AsyncClient,
    admin_browser: Browser,
    org_id: object,
    headers: dict[str, str],
    tenant: str,
) -> httpx.Response:
    """The whole round trip; answers the callback's redirect (to the settings page)."""
    location = await consent_location(emu, client, org_id, headers, tenant)
    return await admin_browser.get(location)
