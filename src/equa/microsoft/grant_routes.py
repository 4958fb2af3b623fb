"""/api/v1/microsoft/grants: operators (platform admins) grant tenant groups to organizations, list and revoke them.

Everyone else gets 403 platform_admin_required, whatever organization they administer: an organization admin
cannot widen their own scope.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse

from equa.accounts.deps import PlatformAdmin
from equa.db.session import release_connection
from equa.deps import DbSession
from equa.errors import problem_response
from equa.microsoft import grants, repository
from equa.microsoft.deps import ProcessGraph, require_microsoft_enabled
from equa.microsoft.graph import GraphError
from equa.microsoft.models import MicrosoftGroupGrant
from equa.microsoft.problems import graph_problem
from equa.microsoft.schemas import GrantIn, GrantListOut, GrantOut, GrantRevokedOut, problem_responses

router = APIRouter(
    prefix="/api/v1/microsoft/grants",
    tags=["microsoft grants"],
    dependencies=[Depends(require_microsoft_enabled)],
)

OPERATOR_ERRORS = problem_responses(401, 403, 404, 422)


async def _linked(session: DbSession, grant_rows: list[MicrosoftGroupGrant]) -> set[tuple[uuid.UUID, str]]:
    """(organization, group) pairs among `grant_rows` that are linked right now."""
    org_ids = {row.organization_id for row in grant_rows}
    if not org_ids:
        return set()
    return set(await repository.links(session, org_ids))


def grant_out(grant: MicrosoftGroupGrant, linked: bool) -> GrantOut:
    return GrantOut(
        organization_id=grant.organization_id,
        group_id=uuid.UUID(grant.group_id),
        origin=grant.origin,  # type: ignore[arg-type]
        group_name=grant.group_name,
        granted_by=grant.granted_by,
        granted_at=grant.granted_at,
        linked=linked,
        tenant_id=grant.tenant_id,
    )


@router.get("", response_model=GrantListOut, responses=OPERATOR_ERRORS)
async def list_grants(
    _: PlatformAdmin,
    session: DbSession,
    organization_id: Annotated[
        uuid.UUID | None, Query(alias="organizationId", description="Only this organization's grants.")
    ] = None,
) -> GrantListOut:
    """Every granted or created group (of one organization with organizationId), oldest first."""
    rows = await grants.list_grants(session, organization_id)
    linked = await _linked(session, rows)
    return GrantListOut(items=[grant_out(row, (row.organization_id, row.group_id) in linked) for row in rows])


@router.post(
    "",
    response_model=GrantOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": GrantOut, "description": "The organization already had this group; nothing changed"},
        **problem_responses(401, 403, 404, 409, 422, 502, 503),
    },
)
async def grant(
    request: Request,
    body: GrantIn,
    response: Response,
    user: PlatformAdmin,
    session: DbSession,
    graph: ProcessGraph,
) -> GrantOut | JSONResponse:
    """Let an organization link and manage an existing group (checked with Graph: it exists and is manageable).

    Multi-tenant mode: the group is looked up in the organization's connected tenant, recorded on the grant."""
    graph = await grants.graph_of_organization(
        session, graph, request.app.state.settings, body.organization_id
    )
    await release_connection(session)
    try:
        result = await grants.grant_group(session, graph, body.organization_id, body.group_id, user)
    except GraphError as error:
        return problem_response(graph_problem(error, request.app.state.settings))
    if not result.created:
        response.status_code = status.HTTP_200_OK
    organization = await repository.organization(session, body.organization_id)
    linked = organization is not None and str(organization.microsoft_group) == result.grant.group_id
    return grant_out(result.grant, linked)


@router.delete("", response_model=GrantRevokedOut, responses=problem_responses(401, 403, 404, 422))
async def revoke(body: GrantIn, user: PlatformAdmin, session: DbSession) -> GrantRevokedOut:
    """Take a group back from an organization; unlinks it there if linked (the group stays in Microsoft 365)."""
    result = await grants.revoke_group(session, body.organization_id, body.group_id, user)
    return GrantRevokedOut(
        organization_id=result.organization_id, group_id=uuid.UUID(result.group_id), unlinked=result.unlinked
    )
