"""Which Graph client serves an organization, and what its tenant connection looks like to the status and pages.

Single-tenant mode: the process's one client, whatever the organization. Multi-tenant mode: the client of the
organization's connected tenant; an organization with no tenant, or whose tenant revoked the consent, gets a
problem with the action that fixes it instead of a client.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.microsoft.graph import GraphClient
from equa.microsoft.status import AUTH_FAILED, Status
from equa.microsoft.tenants import repository
from equa.microsoft.tenants.models import ConnectionState, TenantConnection
from equa.microsoft.tenants.problems import action_for, consent_revoked, not_connected
from equa.organizations.models import Organization
from equa.settings import Settings

log = logging.getLogger("equa.microsoft.tenants")


@dataclass(frozen=True)
class TenantView:
    """An organization's tenant as the status, pages and CLI show it."""

    connection: ConnectionState
    tenant_id: str | None = None
    tenant_name: str | None = None
    tenant_domain: str | None = None
    action: str | None = None

    @classmethod
    def of(cls, connection: TenantConnection | None) -> TenantView:
        if connection is None:
            state = ConnectionState.NOT_CONNECTED
            return cls(state, action=action_for(state))
        state = ConnectionState(connection.state)
        return cls(
            state, connection.tenant_id, connection.tenant_name, connection.tenant_domain, action_for(state)
        )


async def note_refusals(
    session: AsyncSession, graph: GraphClient, connection: TenantConnection | None
) -> TenantConnection | None:
    """When Graph calls saw the connection's tenant refuse the app, record the consent as revoked for every
    organization of that tenant. Committed at once: it is a fact learned from Microsoft, kept even though the
    request that learned it is refused."""
    if connection is None or connection.state != ConnectionState.CONNECTED.value:
        return connection
    code = graph.refusals.get(connection.tenant_id)
    if code is None:
        return connection
    marked = await repository.mark_tenant_revoked(session, connection.tenant_id, code)
    log.warning(
        "tenant %s refuses the app (%s): consent revoked for %d organization(s)",
        connection.tenant_id,
        code,
        len(marked),
    )
    await session.commit()
    await session.refresh(connection)
    return connection


async def tenant_view(
    session: AsyncSession, graph: GraphClient | None, organization: Organization
) -> TenantView:
    connection = await repository.connection_of(session, organization.id)
    if graph is not None:
        connection = await note_refusals(session, graph, connection)
    return TenantView.of(connection)


async def status_graph(
    session: AsyncSession, graph: GraphClient | None, settings: Settings, organization: Organization
) -> tuple[TenantView, GraphClient | None]:
    """The tenant the status reports, and the client that reads its group (None: nothing to read)."""
    if not settings.multi_tenant:
        return TenantView(ConnectionState.CONNECTED, settings.ms_auth_tenant_id), graph
    view = await tenant_view(session, graph, organization)
    if graph is None or view.connection is not ConnectionState.CONNECTED or view.tenant_id is None:
        return view, None
    return view, graph.for_tenant(view.tenant_id)


async def graph_for(
    session: AsyncSession, graph: GraphClient, settings: Settings, organization: Organization
) -> GraphClient:
    """The Graph client of `organization`'s tenant; AppError (409, with the action) when there is none to use."""
    if not settings.multi_tenant:
        return graph
    connection = await repository.connection_of(session, organization.id)
    connection = await note_refusals(session, graph, connection)
    if connection is None:
        raise not_connected()
    if connection.state != ConnectionState.CONNECTED.value:
        raise consent_revoked(connection.tenant_name)
    return graph.for_tenant(connection.tenant_id)


async def graph_for_run(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    settings: Settings,
    organization_id: uuid.UUID,
) -> GraphClient:
    """The client a sync run of the organization uses. With no usable tenant it is the process's own client, whose
    calls fail with an action (no home tenant), so the run records the failure instead of staying queued."""
    if not settings.multi_tenant:
        return graph
    async with session_factory() as session:
        connection = await repository.connection_of(session, organization_id)
        if connection is None:
            return graph
        return graph.for_tenant(connection.tenant_id)


async def paused_organization_ids(session: AsyncSession, settings: Settings) -> set[uuid.UUID]:
    """Organizations whose scheduled syncs wait: in multi-tenant mode, those whose tenant revoked the consent."""
    if not settings.multi_tenant:
        return set()
    return await repository.revoked_organization_ids(session)


def tenant_status(
    status: Status, tenant: TenantView, graph: GraphClient | None, settings: Settings
) -> Status:
    """The status as multi-tenant mode tells it: an organization whose tenant is not connected or revoked its
    consent gets the action that fixes it; there is no shared admin consent address (consent is per organization,
    through connect)."""
    if not settings.multi_tenant or not settings.ms_auth_enabled:
        return status
    if graph is None and tenant.action:
        return replace(status, enabled=True, health=AUTH_FAILED, action=tenant.action, admin_consent_url=None)
    return replace(status, admin_consent_url=None)
