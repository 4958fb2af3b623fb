"""Connecting and disconnecting an organization's Microsoft 365 tenant (multi-tenant mode).

Connect: a signed, single-use `state` bound to the organization and the admin, and the admin consent address.
The callback checks the state, then proves the tenant (a token for it and `GET /organization`) before storing
anything. Disconnect: the linked group is unlinked (it stays in the tenant) and the tenant forgotten.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.db.session import release_connection
from equa.errors import AppError
from equa.microsoft.audit import record_audit
from equa.microsoft.graph import GraphClient, GraphError, GraphTransient
from equa.microsoft.groups import unlink_group
from equa.microsoft.tenants import repository
from equa.microsoft.tenants.models import ConnectionState, TenantConnection
from equa.microsoft.tenants.problems import (
    CONSENT_FAILURES,
    ConsentFailure,
    already_connected,
    not_connected,
    not_multi_tenant,
)
from equa.microsoft.tenants.routing import note_refusals
from equa.microsoft.tenants.state import STATE_LIFETIME, BadState, read_state, sign_state
from equa.organizations.deps import membership_context
from equa.organizations.models import Organization
from equa.settings import MULTI_TENANT_AUTHORITY, Settings

log = logging.getLogger("equa.microsoft.tenants")

# Microsoft's answer when an administrator declines (or cancels) the consent.
DECLINED_ERRORS = frozenset({"access_denied", "consent_required"})
DECLINED_CODE = "AADSTS65004"


def _secret(settings: Settings) -> str:
    return settings.session_secret.get_secret_value()


async def consent_url(
    session: AsyncSession,
    settings: Settings,
    organization: Organization,
    user: User,
    *,
    graph: GraphClient | None = None,
    now: datetime | None = None,
) -> str:
    """The admin consent address for `organization`, with a fresh state bound to it and to `user`.

    `graph`: with it, a connection stored as connected is first asked whether its tenant still lets the app in, so
    an admin told to reconnect (409 microsoft_consent_revoked) is not then told it is already connected."""
    if not settings.multi_tenant:
        raise not_multi_tenant()
    connection = await repository.connection_of(session, organization.id)
    if connection is not None and connection.state == ConnectionState.CONNECTED.value and graph is not None:
        connection = await _still_connected(session, graph, connection)
    if connection is not None and connection.state == ConnectionState.CONNECTED.value:
        raise already_connected(connection.tenant_name)
    now = now or utcnow()
    expires = now + STATE_LIFETIME
    row = repository.add_consent_state(session, organization.id, user.id, expires)
    await session.flush()
    params = {
        "client_id": settings.ms_auth_client_id or "",
        "scope": settings.graph_scope,
        "redirect_uri": settings.consent_callback_url,
        "state": sign_state(_secret(settings), row.id, organization.id, user.id, expires),
    }
    return f"{settings.ms_authority_host}/{MULTI_TENANT_AUTHORITY}/v2.0/adminconsent?{urlencode(params)}"


@dataclass(frozen=True)
class ConsentAnswer:
    """The query Microsoft sends back to the redirect URI (every value untrusted)."""

    state: str | None = None
    tenant: str | None = None
    admin_consent: str | None = None
    error: str | None = None
    error_description: str | None = None

    @property
    def declined(self) -> bool:
        return bool(self.error) or DECLINED_CODE in (self.error_description or "")


@dataclass(frozen=True)
class ConsentOutcome:
    """Where the callback sends the admin back to, and what happened."""

    organization_id: uuid.UUID | None
    connection: TenantConnection | None = None
    failure: ConsentFailure | None = None


async def _still_connected(
    session: AsyncSession, graph: GraphClient, connection: TenantConnection
) -> TenantConnection:
    """The connection, recorded as revoked when its tenant refuses the app now. The refusal may have been seen by
    another process (each remembers its own) or not at all yet, so the tenant is asked (one token, one read):
    connect is rare, and a wrong "already connected" would leave the admin no way forward."""
    if connection.tenant_id not in graph.refusals:
        await release_connection(session)  # about to wait on Microsoft
        try:
            await prove_tenant(graph, connection.tenant_id)
        except GraphError as error:
            # A refusal is noted by the client (graph.refusals); any other failure proves nothing either way.
            log.info(
                "tenant %s: connection check before connect failed (%s)", connection.tenant_id, error.code
            )
    return await note_refusals(session, graph, connection) or connection


def _failed(code: str, organization_id: uuid.UUID | None) -> ConsentOutcome:
    return ConsentOutcome(organization_id, failure=CONSENT_FAILURES[code])


def _tenant_guid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


async def complete_consent(
    session: AsyncSession,
    graph: GraphClient,
    settings: Settings,
    user: User,
    answer: ConsentAnswer,
    *,
    now: datetime | None = None,
) -> ConsentOutcome:
    """Check the answer's state, prove the tenant, then store the connection (with an audit event)."""
    now = now or utcnow()
    try:
        claims = read_state(_secret(settings), answer.state, now)
    except BadState as bad:
        return _failed(f"state_{bad.reason}", bad.claims.organization_id if bad.claims else None)
    organization_id = claims.organization_id
    used = await repository.use_consent_state(session, claims.state_id, now)
    if used is None:
        return _failed("state_used", organization_id)
    if used.organization_id != claims.organization_id:
        return _failed("state_other_org", organization_id)
    if used.user_id != claims.user_id or claims.user_id != user.id:
        return _failed("state_other_admin", organization_id)
    try:
        context = await membership_context(session, organization_id, user)
    except AppError:
        return _failed("not_admin", None)
    if not context.is_admin:
        return _failed("not_admin", organization_id)
    if answer.declined:
        log.info("organization %s: admin consent declined (%s)", organization_id, (answer.error or "")[:40])
        return _failed("consent_declined", organization_id)
    tenant_id = _tenant_guid(answer.tenant)
    if tenant_id is None:
        return _failed("tenant_missing", organization_id)
    existing = await repository.connection_of(session, organization_id)
    if (
        existing is not None
        and existing.state == ConnectionState.CONNECTED.value
        and existing.tenant_id != tenant_id
    ):
        return _failed("already_connected", organization_id)

    await release_connection(session)  # about to wait on Microsoft
    try:
        name, domain = await prove_tenant(graph, tenant_id)
    except GraphTransient as error:
        log.warning(
            "organization %s: tenant %s could not be checked: %s", organization_id, tenant_id, error.code
        )
        return _failed("tenant_unavailable", organization_id)
    except GraphError as error:
        log.warning("organization %s: tenant %s refused the app: %s", organization_id, tenant_id, error.code)
        return _failed("tenant_refused", organization_id)

    organization = context.organization
    if existing is not None and existing.tenant_id != tenant_id:
        await _unlink_for_tenant_change(session, organization, user)
    connection = existing or TenantConnection(organization_id=organization_id, tenant_id=tenant_id)
    connection.tenant_id = tenant_id
    connection.tenant_name = name
    connection.tenant_domain = domain
    connection.connected_by = user.id
    connection.connected_at = now
    connection.state = ConnectionState.CONNECTED.value
    connection.revoked_at = None
    connection.revoked_code = None
    if existing is None:
        session.add(connection)
    graph.refusals.pop(tenant_id, None)
    record_audit(
        session,
        organization_id=organization_id,
        actor_id=user.id,
        action="tenant.reconnect" if existing is not None else "tenant.connect",
        target=tenant_id,
        detail=f"Connected the Microsoft 365 tenant {name or tenant_id}"
        + (f" ({domain})." if domain else "."),
    )
    await session.flush()
    log.info("organization %s connected tenant %s", organization_id, tenant_id)
    return ConsentOutcome(organization_id, connection=connection)


async def prove_tenant(graph: GraphClient, tenant_id: str) -> tuple[str | None, str | None]:
    """A token for the tenant and its directory object: (display name, default verified domain)."""
    client = graph.for_tenant(tenant_id)
    if tenant_id in graph.refusals:
        # The tenant refused the app lately: a token cached from before proves nothing about the new consent.
        await client.tokens.invalidate()
    response = await client.get("organization", params={"$select": "id,displayName,verifiedDomains"})
    organizations: list[dict[str, Any]] = (response.json() or {}).get("value") or []
    found = next((o for o in organizations if str(o.get("id", "")).lower() == tenant_id), None)
    if found is None and organizations:
        found = organizations[0]
    if found is None:
        return None, None
    name = found.get("displayName")
    domains = [d for d in found.get("verifiedDomains") or [] if isinstance(d, dict)]
    default = next((d for d in domains if d.get("isDefault")), domains[0] if domains else None)
    domain = default.get("name") if default else None
    return (
        str(name)[:256] if name else None,
        str(domain)[:256] if domain else None,
    )


async def _unlink_for_tenant_change(session: AsyncSession, organization: Organization, user: User) -> None:
    if organization.microsoft_group is not None:
        await unlink_group(
            session,
            organization,
            user,
            detail="Unlinked because the organization's Microsoft 365 tenant changed; the group stays in its tenant.",
        )


async def disconnect(
    session: AsyncSession, graph: GraphClient, organization: Organization, user: User
) -> str:
    """Unlink the group (it stays in the tenant) and forget the tenant. Returns the tenant id."""
    connection = await repository.connection_of(session, organization.id)
    if connection is None:
        raise not_connected()
    tenant_id = connection.tenant_id
    if organization.microsoft_group is not None:
        await unlink_group(
            session,
            organization,
            user,
            detail="Unlinked when the Microsoft 365 tenant was disconnected; the group stays in the tenant.",
        )
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=user.id,
        action="tenant.disconnect",
        target=tenant_id,
        detail=f"Disconnected the Microsoft 365 tenant {connection.tenant_name or tenant_id}.",
    )
    await repository.delete_connection(session, connection)
    others = await repository.organizations_of_tenant(session, tenant_id)
    if not others and graph.tenant_clients is not None:
        graph.tenant_clients.forget(tenant_id)  # no organization uses it any more: its tokens go too
    return tenant_id
