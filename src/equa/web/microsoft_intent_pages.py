"""Page routes of the admin's intent about the group: the team members removed by hand (exclusions), listed with
"Allow again". HTML partials for htmx, over the same services as the JSON API.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from equa.deps import DbSession
from equa.errors import AppError
from equa.microsoft.deps import MicrosoftAdmin, require_microsoft_enabled
from equa.microsoft.groups.exclusions import allow_again, list_exclusions
from equa.web.microsoft_partials import partial, partial_context, problem_of

PREFIX = "/organizations/{org_id}/settings/microsoft"
router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(require_microsoft_enabled)])


async def _exclusions(
    request: Request, context: MicrosoftAdmin, session: DbSession, **extra: Any
) -> HTMLResponse:
    page = partial_context(
        request, context, exclusions=await list_exclusions(session, context.organization), problem=None
    )
    return partial(request, "exclusions.html", page | extra)


@router.get("/exclusions")
async def exclusions(request: Request, context: MicrosoftAdmin, session: DbSession) -> HTMLResponse:
    return await _exclusions(request, context, session)


@router.post("/exclusions/{user_id}/allow")
async def allow(
    request: Request, user_id: uuid.UUID, context: MicrosoftAdmin, session: DbSession
) -> HTMLResponse:
    """Allow an excluded team member again: the next sync adds them."""
    try:
        allowed = await allow_again(session, context.organization, context.user, user_id)
    except AppError as error:
        problem = await problem_of(request, session, error)
        return await _exclusions(request, context, session, problem=problem)
    name = allowed.display_name or allowed.email or "They"
    return await _exclusions(
        request, context, session, ms_notice=f"{name} is allowed again: the next sync adds them to the group."
    )
