"""HTTP API of exclusions: team members an admin removed from the group, whom the sync does not add back.

/api/v1/organizations/{org_id}/microsoft/exclusions (admins only; absent when MS_AUTH_ENABLED is false).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from equa.deps import DbSession
from equa.microsoft import groups
from equa.microsoft.deps import MicrosoftAdmin, require_microsoft_enabled
from equa.microsoft.groups.exclusions import Exclusion, allow_again, list_exclusions
from equa.microsoft.schemas import ExclusionOut, ExclusionPageOut, problem_responses
from equa.pagination import cursors_for

router = APIRouter(
    prefix="/api/v1/organizations/{org_id}/microsoft",
    tags=["microsoft"],
    dependencies=[Depends(require_microsoft_enabled)],
)


def exclusion_out(excluded: Exclusion) -> ExclusionOut:
    return ExclusionOut(
        user_id=excluded.user_id,
        email=excluded.email,
        display_name=excluded.display_name,
        excluded_at=excluded.excluded_at,
        excluded_by=excluded.excluded_by,
    )


@router.get("/exclusions", response_model=ExclusionPageOut, responses=problem_responses(401, 403, 404, 422))
async def exclusions(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    cursor: Annotated[
        str | None, Query(max_length=512, description="nextCursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=groups.MAX_PAGE_SIZE)] = groups.DEFAULT_PAGE_SIZE,
) -> ExclusionPageOut:
    """Team members an admin removed from the group, newest first: the sync reports them as `excluded` and does not
    add them."""
    found, next_cursor = await list_exclusions(
        session,
        context.organization,
        cursors=cursors_for(request, "exclusions", context.organization.id),
        cursor=cursor,
        limit=limit,
    )
    return ExclusionPageOut(items=[exclusion_out(e) for e in found], next_cursor=next_cursor)


@router.delete(
    "/exclusions/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422),
)
async def allow(user_id: uuid.UUID, context: MicrosoftAdmin, session: DbSession) -> Response:
    """Allow an excluded team member again: the next sync adds them. 404 when they are not excluded."""
    await allow_again(session, context.organization, context.user, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
