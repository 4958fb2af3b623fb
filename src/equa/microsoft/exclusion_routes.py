"""HTTP API of exclusions: team members an admin removed from the group, whom the sync does not add back.

/api/v1/organizations/{org_id}/microsoft/exclusions (admins only; absent when MS_AUTH_ENABLED is false).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response, status

from equa.deps import DbSession
from equa.microsoft.deps import MicrosoftAdmin, require_microsoft_enabled
from equa.microsoft.groups.exclusions import Exclusion, allow_again, list_exclusions
from equa.microsoft.schemas import ExclusionListOut, ExclusionOut, problem_responses

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


@router.get("/exclusions", response_model=ExclusionListOut, responses=problem_responses(401, 403, 404, 422))
async def exclusions(context: MicrosoftAdmin, session: DbSession) -> ExclusionListOut:
    """Team members an admin removed from the group: the sync reports them as `excluded` and does not add them."""
    return ExclusionListOut(
        items=[exclusion_out(e) for e in await list_exclusions(session, context.organization)]
    )


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
