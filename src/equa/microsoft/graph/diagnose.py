"""Diagnosis of the Microsoft connection: configuration, reachability, credentials, consent, permissions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.errors import GraphAuthenticationFailed, GraphError, GraphPermissionDenied
from equa.microsoft.graph.permissions import missing_permissions

if TYPE_CHECKING:
    from equa.microsoft.graph.client import GraphClient
    from equa.settings import Settings


@dataclass(frozen=True)
class Check:
    """One thing verified: what, whether it held, what was seen, and what an admin should do if not."""

    name: str
    ok: bool
    detail: str
    action: str | None = None


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str, action: str | None = None) -> bool:
        self.checks.append(Check(name, ok, detail, action))
        return ok


def _error_detail(error: GraphError) -> str:
    detail = error.message
    if error.request_id:
        detail += f" (request-id {error.request_id})"
    return detail


async def diagnose(settings: Settings, *, tenant_id: str | None = None) -> Diagnosis:
    """Sign in, look at the token's roles and read one page of groups; report each step with its remedy.

    `tenant_id`: check that tenant (an organization's, in multi-tenant mode) instead of MS_AUTH_TENANT_ID's."""
    from equa.microsoft.graph.auth import TokenProvider
    from equa.microsoft.graph.client import GraphClient

    diagnosis = Diagnosis()
    config = GraphConfig.from_settings(settings)
    if tenant_id is not None:
        config = config.for_tenant(tenant_id)
    missing = [
        name
        for name, value in (("MS_AUTH_CLIENT_ID", config.client_id), ("MS_AUTH_TENANT_ID", config.tenant_id))
        if not value
    ]
    if not (config.client_secret or config.certificate_path):
        missing.append("MS_AUTH_SECRET, MS_AUTH_SECRET_FILE or MS_AUTH_CERTIFICATE_PATH")
    credential = "certificate" if config.certificate_path else "client secret"
    if not diagnosis.add(
        "configuration",
        not missing,
        f"client {config.client_id or '-'} in tenant {config.tenant_id or '-'} with a {credential}"
        if not missing
        else f"missing: {'; '.join(missing)}",
        None if not missing else "Set the missing variables from the app registration's Overview page.",
    ):
        return diagnosis

    # A diagnosis should answer in seconds, not sit out a long throttling wait.
    config = dataclasses.replace(
        config,
        max_attempts=min(config.max_attempts, 3),
        max_retry_wait_seconds=min(config.max_retry_wait_seconds, 10.0),
        dry_run=True,
    )
    tokens = TokenProvider(config)
    async with GraphClient(config, tokens) as client:
        try:
            claims = await tokens.claims()
        except GraphAuthenticationFailed as error:
            diagnosis.add("sign-in service reachable", True, f"{config.authority_host} answered")
            diagnosis.add("credentials", False, _error_detail(error), error.action)
            return diagnosis
        except GraphError as error:
            diagnosis.add("sign-in service reachable", False, _error_detail(error), error.action)
            return diagnosis
        diagnosis.add("sign-in service reachable", True, f"{config.authority_host} answered")
        diagnosis.add("credentials", True, f"signed in as app {config.client_id} with a {credential}")

        roles = sorted(str(role) for role in claims.get("roles") or [])
        lacking = missing_permissions(roles, config.group_scope)
        if not roles:
            detail = "the token carries no roles"
        elif lacking:
            detail = (
                f"granted: {', '.join(roles)}; missing for group scope `{config.group_scope}`: "
                f"{', '.join(p.name for p in lacking)}"
            )
        else:
            detail = f"application permissions granted: {', '.join(roles)}"
        action = None
        if lacking:
            needed = ", ".join(p.name for p in lacking)
            where = config.admin_consent_url or "App registration > API permissions > Grant admin consent"
            action = (
                f"Add the Microsoft Graph application permissions {needed} to the app registration (group scope "
                f"`{config.group_scope}`), then a tenant administrator grants admin consent: {where}"
            )
        diagnosis.add("admin consent", not lacking, detail, action)

        try:
            response = await client.get("/groups", params={"$top": "1", "$select": "id,displayName"})
        except GraphPermissionDenied as error:
            diagnosis.add("read groups", False, _error_detail(error), error.action)
        except GraphError as error:
            diagnosis.add(
                "Microsoft Graph reachable",
                False,
                _error_detail(error),
                error.action or f"Check MS_GRAPH_URL ({config.graph_url}).",
            )
        else:
            count = len((response.json() or {}).get("value", []))
            diagnosis.add("Microsoft Graph reachable", True, f"{config.graph_url} answered")
            diagnosis.add("read groups", True, f"read one page of groups ({count} shown)")
            if settings.group_scope_unit:
                await _check_unit(client, settings.group_scope_unit, diagnosis)
    return diagnosis


async def _check_unit(client: GraphClient, unit_id: str, diagnosis: Diagnosis) -> None:
    """MS_GROUP_SCOPE=administrative-unit:<id>: the unit exists and the app may read its groups."""
    from equa.microsoft.graph.errors import GraphNotFound

    name = "administrative unit (MS_GROUP_SCOPE)"
    try:
        unit = (
            await client.get(
                f"/directory/administrativeUnits/{unit_id}", params={"$select": "id,displayName"}
            )
        ).json()
        await client.get(
            f"/directory/administrativeUnits/{unit_id}/members/microsoft.graph.group",
            params={"$top": "1", "$select": "id"},
        )
    except GraphNotFound as error:
        diagnosis.add(
            name,
            False,
            f"the tenant has no administrative unit {unit_id}: {_error_detail(error)}",
            "Copy the unit's object id from Microsoft Entra admin center > Roles & admins > Admin units.",
        )
    except GraphPermissionDenied as error:
        diagnosis.add(
            name,
            False,
            _error_detail(error),
            "Add the application permission AdministrativeUnit.Read.All and grant admin consent again.",
        )
    except GraphError as error:
        diagnosis.add(name, False, _error_detail(error), error.action)
    else:
        diagnosis.add(name, True, f"read the groups of unit {(unit or {}).get('displayName')!r} ({unit_id})")
