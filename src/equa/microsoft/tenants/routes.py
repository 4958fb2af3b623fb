"""HTTP API of multi-tenant mode: connect (the admin consent address) and disconnect an organization's tenant."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status

from equa.deps import DbSession
from equa.microsoft.deps import MicrosoftAdmin, ProcessGraph, require_microsoft_enabled
from equa.microsoft.schemas import problem_responses
from equa.microsoft.tenants.connection import consent_url, disconnect
from equa.microsoft.tenants.problems import not_multi_tenant
from equa.microsoft.tenants.routing import tenant_view
from equa.microsoft.tenants.schemas import ConnectionOut, ConnectOut

PREFIX = "/api/v1/organizations/{org_id}/microsoft"
router = APIRouter(prefix=PREFIX, tags=["microsoft"], dependencies=[Depends(require_microsoft_enabled)])


@router.post("/connect", response_model=ConnectOut, responses=problem_responses(401, 403, 404, 409, 422))
async def connect(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: ProcessGraph
) -> ConnectOut:
    """Start connecting the organization's Microsoft 365 tenant: open `consentUrl` in a browser, where a tenant
    administrator signs in and accepts; Microsoft then sends the browser back to /microsoft/consent-callback.

    The address is good for one round trip, by this admin, for this organization, within 15 minutes.
    409 microsoft_single_tenant outside multi-tenant mode; 409 microsoft_already_connected when connected."""
    url = await consent_url(
        session, request.app.state.settings, context.organization, context.user, graph=graph
    )
    return ConnectOut(consent_url=url)


@router.get("/connection", response_model=ConnectionOut, responses=problem_responses(401, 403, 404, 409))
async def read_connection(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: ProcessGraph
) -> ConnectionOut:
    """The organization's tenant connection: `connection` and the action that goes with it."""
    if not request.app.state.settings.multi_tenant:
        raise not_multi_tenant()
    return ConnectionOut.of(await tenant_view(session, graph, context.organization))


@router.delete(
    "/connection", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404, 409)
)
async def remove_connection(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: ProcessGraph
) -> Response:
    """Disconnect the tenant: the linked group is unlinked (it stays in the tenant, members and all) and the
    tenant forgotten. Connect again at any time. 409 microsoft_not_connected when there is nothing to disconnect."""
    if not request.app.state.settings.multi_tenant:
        raise not_multi_tenant()
    await disconnect(session, graph, context.organization, context.user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
