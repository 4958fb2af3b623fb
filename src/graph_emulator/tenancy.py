"""Several tenants: creating one, and an app's service principal in each (admin consent given or revoked)."""

from __future__ import annotations

import secrets
from typing import Any

from .seeds import add_service_principals, generate_groups, generate_users, load_tenant, service_principal
from .state import App, Directory, Tenant

# How consent is taken back, as a tenant administrator can do it in Entra:
# - "service_principal": the enterprise application is deleted. New token requests answer AADSTS7000229;
#   Graph answers 401 Authorization_IdentityNotFound to tokens issued before.
# - "permissions": the service principal stays, its application permissions are removed. New tokens carry no
#   roles (Graph answers 403 Authorization_RequestDenied); tokens issued before keep their roles until they expire.
REVOKE_MODES = ("service_principal", "permissions")


class ConsentError(ValueError):
    """The app cannot be consented in that tenant (unknown, or registered single-tenant elsewhere)."""


def registration(directory: Directory, client_id: str) -> App | None:
    return directory.registrations.get(client_id)


def consent_possible(directory: Directory, tenant: Tenant, client_id: str) -> App:
    """The registration an admin of `tenant` may consent to, or ConsentError with the AADSTS reason."""
    found = directory.registrations.get(client_id)
    if found is None:
        app = tenant.apps.get(client_id)
        if app is not None:
            return app
        raise ConsentError(
            f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.display_name}'. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You may have sent your "
            "authentication request to the wrong tenant."
        )
    if found.home_tenant_id != tenant.id and not found.multi_tenant:
        raise ConsentError(
            f"AADSTS50194: Application '{client_id}'({found.display_name}) is not configured as a multi-tenant "
            "application. Usage of the /common endpoint is not supported for such applications created after "
            "'10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant."
        )
    return found


def grant_consent(directory: Directory, tenant: Tenant, client_id: str) -> App:
    """Admin consent: the app's service principal in `tenant`, holding every application permission it requests."""
    existing = tenant.apps.get(client_id)
    if existing is not None:
        existing.roles = set(existing.requested_roles)
        return existing
    found = consent_possible(directory, tenant, client_id)
    if found.home_tenant_id == tenant.id:
        # The home tenant's service principal came back: the registration is its own principal there.
        found.roles = set(found.requested_roles)
        tenant.apps[client_id] = found
        return found
    principal = service_principal(found, tenant.id)
    tenant.apps[client_id] = principal
    return principal


def revoke_consent(tenant: Tenant, client_id: str, mode: str = "service_principal") -> bool:
    """Take the tenant's consent back; False when the app had no service principal there."""
    if mode not in REVOKE_MODES:
        raise ValueError(f"mode must be one of {', '.join(REVOKE_MODES)}")
    app = tenant.apps.get(client_id)
    if app is None:
        return False
    if mode == "service_principal":
        del tenant.apps[client_id]
    else:
        app.roles = set()
    return True


def consent_state(directory: Directory, tenant: Tenant) -> list[dict[str, Any]]:
    """Every registered app as this tenant sees it: consented (with roles), or not."""
    rows = []
    client_ids = dict.fromkeys([*directory.registrations, *tenant.apps])
    for client_id in client_ids:
        principal = tenant.apps.get(client_id)
        found = directory.registrations.get(client_id) or principal
        assert found is not None
        if principal is None and found.home_tenant_id != tenant.id and not found.multi_tenant:
            continue  # a single-tenant app of another tenant: not this tenant's business
        rows.append(
            {
                "clientId": client_id,
                "displayName": found.display_name,
                "homeTenantId": found.home_tenant_id,
                "multiTenant": found.multi_tenant,
                "servicePrincipal": principal is not None,
                "servicePrincipalId": principal.service_principal_id if principal else None,
                "roles": sorted(principal.roles) if principal else [],
                "requestedRoles": sorted(found.requested_roles),
                "consented": bool(principal and principal.roles),
            }
        )
    return rows


def tenant_entry(spec: dict[str, Any]) -> dict[str, Any]:
    """A seed tenant from a short spec: `displayName`, optional `id`, `domain`, `users` (a count or a list),
    `groups` (a count or a list), `adminPassword`, `servicePrincipals`/`consentedApps` (client ids)."""
    entry = dict(spec)
    name = str(entry.get("displayName") or "Tenant")
    slug = "".join(ch for ch in name.lower() if ch.isalnum()) or "tenant"
    domain = entry.setdefault("domain", f"{slug}.onmicrosoft.com")
    users = entry.get("users", 10)
    if isinstance(users, int):
        entry["users"] = generate_users(domain, users)
    groups = entry.get("groups", 0)
    if isinstance(groups, int):
        entry["groups"] = generate_groups(domain, entry["users"], groups)
    password = str(entry.pop("adminPassword", "") or f"Admin-{secrets.token_urlsafe(9)}")
    admin = str(entry.pop("adminUserPrincipalName", "") or f"admin@{domain}")
    accounts = list(entry.get("accounts", []))
    if not any(account.get("admin") for account in accounts):
        accounts.insert(0, {"userPrincipalName": admin, "password": password, "admin": True})
    entry["accounts"] = accounts
    consented = entry.pop("consentedApps", None)
    if consented is not None:
        entry["servicePrincipals"] = [{"clientId": client_id} for client_id in consented]
    return entry


def create_tenant(directory: Directory, spec: dict[str, Any]) -> Tenant:
    """Add a tenant (a seed tenant or a short spec, see `tenant_entry`) to a running directory."""
    entry = tenant_entry(spec)
    tenant = load_tenant(entry)
    if tenant.id in directory.tenants:
        raise ValueError(f"tenant {tenant.id} exists already")
    for domain in (tenant.domain, *tenant.verified_domains):
        if domain.lower() in directory.by_domain:
            raise ValueError(f"domain {domain} belongs to another tenant")
    directory.add(tenant)
    add_service_principals(directory, tenant, entry.get("servicePrincipals", []))
    return tenant


def tenant_view(directory: Directory, tenant: Tenant, *, with_passwords: bool = True) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "domain": tenant.domain,
        "verifiedDomains": [tenant.domain, *tenant.verified_domains],
        "displayName": tenant.display_name,
        "size": tenant.size,
        "users": len(tenant.users),
        "groups": len(tenant.groups),
        "accounts": [
            {
                "userPrincipalName": account.user_principal_name,
                "userId": account.user_id,
                "admin": account.admin,
                **({"password": account.password} if with_passwords else {}),
            }
            for account in tenant.accounts.values()
        ],
        "apps": consent_state(directory, tenant),
    }
