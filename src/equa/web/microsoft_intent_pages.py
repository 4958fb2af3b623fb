"""Page routes of the admin's intent about the group: the team members removed by hand (exclusions), listed with
"Allow again". HTML partials for htmx, over the same services as the JSON API.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from equa.deps import DbSession
from equa.errors import AppError
from equa.microsoft.deps import MicrosoftAdmin, require_microsoft_enabled
from equa.microsoft.groups.exclusions import allow_again, list_exclusions
from equa.pagination import cursors_for
from equa.web.microsoft_partials import partial, partial_context, problem_of

PREFIX = "/organizations/{org_id}/settings/microsoft"
router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(require_microsoft_enabled)])

EXCLUSIONS_PAGE = 25  # as many as the members table shows at a time


async def _exclusions(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    *,
    cursor: str | None = None,
    shown: int = 0,
    **extra: Any,
) -> HTMLResponse:
    """The first page of the list (the whole partial), or with a cursor the next page's rows and footer alone."""
    try:
        found, next_cursor = await list_exclusions(
            session,
            context.organization,
            cursors=cursors_for(request, "exclusions", context.organization.id),
            cursor=cursor,
            limit=EXCLUSIONS_PAGE,
        )
    except AppError as error:
        if not cursor:
            raise
        # A cursor this list did not give out (an old tab, an edited link): show the list again from its start.
        problem = await problem_of(request, session, error)
        response = await _exclusions(request, context, session, problem=problem)
        response.headers["HX-Retarget"] = "#ms-exclusions"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    page = partial_context(
        request,
        context,
        exclusions=found,
        next_cursor=next_cursor,
        shown=shown + len(found),
        more=bool(cursor),
        problem=None,
    )
    return partial(request, "exclusion_rows.html" if cursor else "exclusions.html", page | extra)


@router.get("/exclusions")
async def exclusions(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    shown: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    return await _exclusions(request, context, session, cursor=cursor, shown=shown)


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
