"""Test helpers for several tenants and admin consent, mixed into `testing.RunningEmulator`."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

if TYPE_CHECKING:
    import ssl

    from .testing import EmulatorControl


def _form_fields(page: str) -> dict[str, str] | None:
    """The hidden fields (flow and page token) of the consent page's form, None when the page has no form."""
    if "<form" not in page:
        return None
    return {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    }


def _alert(page: str) -> str:
    found = re.search(r'role="alert">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else page[:200]


class TenantHelpers:
    """Tenants, sign-in accounts, consent and per-tenant token counts of a running emulator."""

    control: EmulatorControl
    base_url: str
    client_id: str

    if TYPE_CHECKING:  # given by RunningEmulator

        @property
        def scope(self) -> str: ...

        def ssl_context(self) -> ssl.SSLContext: ...

        def stats(self) -> dict[str, Any]: ...

    def tenants(self) -> list[dict[str, Any]]:
        """Every tenant: id, domains, name, sign-in accounts (with passwords) and each app's consent there."""
        return self.control.tenants()

    def tenant(self, tenant: str) -> dict[str, Any]:
        """One tenant of `tenants()`, by id, domain or display name."""
        wanted = tenant.lower()
        for found in self.tenants():
            names = {
                found["id"],
                found["displayName"].lower(),
                *(d.lower() for d in found["verifiedDomains"]),
            }
            if wanted in names:
                return found
        raise KeyError(f"no tenant {tenant}")

    def create_tenant(
        self,
        display_name: str,
        *,
        domain: str | None = None,
        tenant_id: str | None = None,
        users: int | list[dict[str, Any]] = 10,
        groups: int | list[dict[str, Any]] = 0,
        admin_password: str | None = None,
        consented: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """A new tenant with an administrator account (`tenant_admin` gives its sign-in); `consented` gives the
        app's service principal there at once. Answers the tenant as `tenant()` does."""
        spec: dict[str, Any] = {"displayName": display_name, "users": users, "groups": groups, **extra}
        if domain:
            spec["domain"] = domain
        if tenant_id:
            spec["id"] = tenant_id
        if admin_password:
            spec["adminPassword"] = admin_password
        if consented:
            spec["consentedApps"] = [self.client_id]
        return self.control.create_tenant(**spec)

    def tenant_admin(self, tenant: str) -> tuple[str, str]:
        """(sign-in name, password) of the tenant's first administrator account."""
        for account in self.tenant(tenant)["accounts"]:
            if account["admin"]:
                return account["userPrincipalName"], account["password"]
        raise KeyError(f"tenant {tenant} has no administrator account")

    def consent_state(self, tenant: str, client_id: str | None = None) -> dict[str, Any]:
        """The app (default: `client_id`) as the tenant sees it: servicePrincipal, roles, consented."""
        wanted = client_id or self.client_id
        for app in self.control.consent_state(tenant):
            if app["clientId"] == wanted:
                return app
        raise KeyError(f"app {wanted} is unknown to tenant {tenant}")

    def grant_consent(self, tenant: str, client_id: str | None = None) -> None:
        """Admin consent in `tenant` without the pages: the service principal with every requested role."""
        self.control.grant_consent(tenant, client_id or self.client_id)

    def revoke_consent(
        self, tenant: str, client_id: str | None = None, mode: str = "service_principal"
    ) -> bool:
        """Take consent back. "service_principal" deletes it: token requests answer AADSTS7000229 and tokens issued
        before get 401 Authorization_IdentityNotFound from Graph. "permissions" keeps it without roles: new tokens
        get 403 from Graph, tokens issued before keep their roles until they expire."""
        return self.control.revoke_consent(tenant, client_id or self.client_id, mode)

    def set_redirect_uris(self, redirect_uris: list[str], client_id: str | None = None) -> None:
        """Register the app's redirect URIs: the consent endpoint then refuses any other (AADSTS50011)."""
        self.control.set_redirect_uris(client_id or self.client_id, redirect_uris)

    def token_requests_by_tenant(self) -> dict[str, int]:
        """Token requests since the last reset (or reset_stats), by tenant id."""
        return dict(self.stats()["token_requests_by_tenant"])

    def admin_consent_url(
        self,
        redirect_uri: str,
        state: str | None = None,
        tenant: str = "organizations",
        client_id: str | None = None,
    ) -> str:
        query = {"client_id": client_id or self.client_id, "scope": self.scope, "redirect_uri": redirect_uri}
        if state is not None:
            query["state"] = state
        return f"{self.base_url}/{tenant}/v2.0/adminconsent?{urlencode(query)}"

    def complete_admin_consent(
        self, consent_url: str, login: str, password: str, *, accept: bool = True
    ) -> str:
        """Go through the consent pages as an administrator would in a browser: sign in, then Accept (or Cancel).

        Answers the redirect's Location (the app's redirect URI with its query), without following it.
        Raises AssertionError with the page's message when a page refuses.
        """
        with httpx.Client(verify=self.ssl_context(), trust_env=False, timeout=30.0) as http:
            page = http.get(consent_url)
            if page.status_code == 302:  # a tenant without sign-in accounts consents at once
                return page.headers["location"]
            form = _form_fields(page.text)
            if form is None:
                raise AssertionError(f"the consent page refused: {_alert(page.text)}")
            page = http.post(
                str(page.url), data={**form, "action": "signin", "login": login, "password": password}
            )
            form = _form_fields(page.text)
            if form is None or 'name="password"' in page.text:
                raise AssertionError(f"sign-in refused: {_alert(page.text)}")
            page = http.post(str(page.url), data={**form, "action": "accept" if accept else "cancel"})
            if page.status_code != 302:
                raise AssertionError(f"the consent page refused: {_alert(page.text)}")
            return page.headers["location"]
