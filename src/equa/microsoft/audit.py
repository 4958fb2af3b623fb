"""Audit trail of every change the integration makes in Microsoft 365 (ARCHITECTURE rule 6)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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


async def record_failed_change(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    organization_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    action: str,
    target: str | None,
    detail: str | None,
    request_id: str | None,
) -> None:
    """Record a failed attempt in its own transaction.

    The request's own unit of work is rolled back when it fails, which would take the audit event with it;
    a failed attempt to change Microsoft 365 must still be on record, so this one commits separately.
    """
    async with session_factory() as session:
        record_audit(
            session,
            organization_id=organization_id,
            actor_id=actor_id,
            action=action,
            target=target,
            outcome=FAILURE,
            detail=detail,
            request_id=request_id,
        )
        await session.commit()
