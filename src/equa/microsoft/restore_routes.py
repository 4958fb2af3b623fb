"""POST .../microsoft/restore-group: bring the organization's deleted group back from deleted items and link it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from equa.deps import DbSession
from equa.errors import AppError, problem_response
from equa.microsoft import groups
from equa.microsoft.deps import Graph, MicrosoftAdmin, Scope, require_microsoft_enabled
from equa.microsoft.routes import PREFIX, WRITE_ERRORS, Cache, group_out, rendered
from equa.microsoft.schemas import GroupOut

router = APIRouter(prefix=PREFIX, tags=["microsoft"], dependencies=[Depends(require_microsoft_enabled)])


@router.post("/restore-group", response_model=GroupOut, responses=WRITE_ERRORS)
async def restore(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: Graph, cache: Cache, scope: Scope
) -> GroupOut | JSONResponse:
    """Restore the last linked group from Microsoft 365's deleted items (within 30 days of its deletion; Microsoft
    365 groups only) and link it again. A link to a deleted group is cleared first, and stays cleared whatever
    the answer. 404 microsoft_nothing_to_restore, 409 microsoft_group_not_deleted (the linked group exists),
    409/422 microsoft_group_not_restorable (gone for good, or a security group)."""

    async def work() -> GroupOut | JSONResponse:
        try:
            group = await groups.restore_group(
                session, graph, context.organization, context.user, scope=scope
            )
        except AppError as refused:
            # Rendered rather than raised: a link cleared on the way is committed with the answer.
            return problem_response(refused)
        cache.forget(graph, str(group["id"]))
        return group_out(group, None)

    return await rendered(request, session, work())
