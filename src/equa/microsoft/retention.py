"""Retention: per-person outcomes of old sync runs, and (when EQUA_AUDIT_RETENTION_DAYS is set) old audit events.

Run in the background by the scheduler, next to the health check. Each organization keeps the outcomes of its
EQUA_SYNC_RUN_RETENTION newest runs; older runs stay listed with their counts, without their per-person rows.
Audit events are kept forever unless EQUA_AUDIT_RETENTION_DAYS is set. Deletes go a few runs per transaction, so
a first pass over a large backlog never holds a long lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.db.base import utcnow
from equa.microsoft import history_repository

RUNS_PER_SCAN = 1000  # old runs found per query (each ranks every run)
RUNS_PER_TRANSACTION = 20  # runs whose outcomes one transaction deletes


@dataclass(frozen=True)
class Pruned:
    runs: int = 0
    outcomes: int = 0
    audit_events: int = 0


async def prune(
    session_factory: async_sessionmaker[AsyncSession], *, keep_runs: int, audit_days: int | None
) -> Pruned:
    """Delete outcomes past each organization's `keep_runs` newest runs, and audit events older than `audit_days`."""
    runs = outcomes = audit_events = 0
    while True:
        async with session_factory() as session:
            found = await history_repository.runs_past_retention(session, keep_runs, limit=RUNS_PER_SCAN)
        for start in range(0, len(found), RUNS_PER_TRANSACTION):
            run_ids = found[start : start + RUNS_PER_TRANSACTION]
            async with session_factory() as session:
                outcomes += await history_repository.delete_outcomes(session, run_ids)
                await session.commit()
            runs += len(run_ids)
        if len(found) < RUNS_PER_SCAN:
            break
    if audit_days is not None:
        async with session_factory() as session:
            audit_events = await history_repository.delete_audit_events_before(
                session, utcnow() - timedelta(days=audit_days)
            )
            await session.commit()
    return Pruned(runs, outcomes, audit_events)
