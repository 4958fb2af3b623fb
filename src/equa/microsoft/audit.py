"""Audit trail of every change the integration makes in Microsoft 365 (ARCHITECTURE rule 6)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from equa.microsoft.models import AuditEvent

SUCCESS = "success"
FAILURE = "failure"


def record_audit(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    action: str,
    target: str | None,
    outcome: str = SUCCESS,
    detail: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Add an event to the caller's unit of work; it is committed with the change it describes."""
    event = AuditEvent(
        organization_id=organization_id,
        actor_user_id=actor_id,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
        graph_request_id=request_id,
    )
    session.add(event)
    return event
