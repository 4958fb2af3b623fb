"""GET .../microsoft/audit: the organization's audit trail of Microsoft 365 changes, a signed-cursor page at a time."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from equa.deps import DbSession
from equa.errors import problem_responses
from equa.microsoft import groups, history_repository
from equa.microsoft.deps import MicrosoftAdmin, require_microsoft_enabled
from equa.microsoft.models import AuditEvent
from equa.microsoft.schemas import AuditEventOut, AuditPageOut
from equa.pagination import BY_CREATED_AND_ID, cursors_for, keyset_page

router = APIRouter(
    prefix="/api/v1/organizations/{org_id}/microsoft",
    tags=["microsoft"],
    dependencies=[Depends(require_microsoft_enabled)],
)


@router.get("/audit", response_model=AuditPageOut, responses=problem_responses(401, 403, 404, 422))
async def audit(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=groups.MAX_PAGE_SIZE)] = groups.DEFAULT_PAGE_SIZE,
) -> AuditPageOut:
    """The organization's audit trail of Microsoft 365 changes, newest first."""

    async def fetch(after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[AuditEvent]:
        return await history_repository.audit_page(session, context.organization.id, after=after, limit=limit)

    events, next_cursor = await keyset_page(
        cursors_for(request, "audit", context.organization.id),
        cursor,
        limit=limit,
        max_size=groups.MAX_PAGE_SIZE,
        keyset=BY_CREATED_AND_ID,
        fetch=fetch,
    )
    return AuditPageOut(
        items=[
            AuditEventOut(
                id=e.id,
                created_at=e.created_at,
                actor_user_id=e.actor_user_id,
                action=e.action,
                target=e.target,
                outcome=e.outcome,
                detail=e.detail,
                graph_request_id=e.graph_request_id,
            )
            for e in events
        ],
        next_cursor=next_cursor,
    )
