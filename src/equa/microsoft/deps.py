"""Request dependencies of the Microsoft 365 endpoints: the feature gate, admin access, the shared Graph client."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from equa.deps import DbSession
from equa.errors import AppError
from equa.microsoft.graph import GraphClient
from equa.microsoft.scope import GroupScope
from equa.microsoft.tenants.routing import graph_for
from equa.organizations.deps import OrgContext, require_org_admin


def feature_absent() -> AppError:
    """Exactly what an address that does not exist answers, so a disabled integration cannot be detected."""
    return AppError(404, "not_found", "Nothing exists at this address.", None)


async def require_microsoft_enabled(request: Request) -> None:
    # Runs before authentication (router-level dependency): with the feature off, even anonymous callers get 404.
    if not request.app.state.settings.ms_auth_enabled:
        raise feature_absent()


async def require_microsoft_admin(
    _: Annotated[None, Depends(require_microsoft_enabled)],
    context: Annotated[OrgContext, Depends(require_org_admin)],
) -> OrgContext:
    return context


MicrosoftAdmin = Annotated[OrgContext, Depends(require_microsoft_admin)]


async def get_process_graph_client(request: Request) -> GraphClient:
    """The process's own client (single-tenant mode's tenant); operator routes that name no organization use it."""
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a needless hop per request.
    graph: GraphClient | None = getattr(request.app.state, "graph", None)
    if graph is None:
        raise feature_absent()
    return graph


async def get_graph_client(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Annotated[GraphClient, Depends(get_process_graph_client)],
) -> GraphClient:
    """The client of the organization's tenant: the process's one in single-tenant mode; in multi-tenant mode the
    connected tenant's, or a problem whose action connects (or reconnects) it."""
    return await graph_for(session, graph, request.app.state.settings, context.organization)


Graph = Annotated[GraphClient, Depends(get_graph_client)]
ProcessGraph = Annotated[GraphClient, Depends(get_process_graph_client)]


async def get_group_scope(request: Request) -> GroupScope:
    """MS_GROUP_SCOPE as read at start-up: which groups the organization may reach."""
    return GroupScope.from_settings(request.app.state.settings)


Scope = Annotated[GroupScope, Depends(get_group_scope)]
