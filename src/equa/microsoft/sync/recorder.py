"""Recording a run's results: per-member outcomes, identity links, flags and audit events.

Results are written chunk by chunk, each chunk in its own short transaction, so a run's memory does not grow with
the team and a run stopped half-way keeps what it recorded (the next run plans from the group as it is, so nothing
is done twice). alreadyMember outcomes are counted, not stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.db.base import utcnow
from equa.microsoft.audit import FAILURE, SUCCESS
from equa.microsoft.models import AuditEvent, FlaggedMember, FlagStatus, MicrosoftMember, Outcome, SyncOutcome
from equa.microsoft.sync.apply import MemberChange
from equa.microsoft.sync.inputs import SyncInputs
from equa.microsoft.sync.plan import IdentityLink, PlannedMember, PlannedRemoval, SyncPlan

OUTCOME_ROWS_PER_INSERT = 1000
DISPLAY_NAME_MAX = 256

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class OutcomeRow:
    """One member's outcome in a run, as SyncOutcome stores it."""

    outcome: str
    user_id: uuid.UUID | None = None
    directory_id: str | None = None
    email: str | None = None
    display_name: str | None = None
    message: str | None = None


@dataclass
class AppliedChanges:
    """One chunk's results: written at once, then dropped."""

    rows: list[OutcomeRow] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    links: dict[uuid.UUID, IdentityLink] = field(default_factory=dict)
    forget_links: set[uuid.UUID] = field(default_factory=set)


def chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def audit_event(
    inputs: SyncInputs,
    *,
    action: str,
    target: str,
    succeeded: bool,
    detail: str | None,
    request_id: str | None,
) -> dict[str, Any]:
    """An AuditEvent row for one change the run made (or failed to make) in Microsoft 365."""
    return {
        "id": uuid.uuid4(),
        "organization_id": inputs.organization_id,
        "actor_user_id": inputs.actor_id,
        "action": action,
        "target": target,
        "outcome": SUCCESS if succeeded else FAILURE,
        "detail": detail,
        "graph_request_id": request_id,
        "created_at": utcnow(),
    }


# --- turning Graph's answers into rows ---------------------------------------------------------------------


def note_add(
    inputs: SyncInputs, applied: AppliedChanges, planned: PlannedMember, change: MemberChange
) -> None:
    """The outcome of adding one member; an added member's link is marked as added by sync."""
    applied.rows.append(
        OutcomeRow(
            outcome=change.outcome,
            user_id=planned.user_id,
            directory_id=planned.directory_id,
            email=planned.email,
            display_name=planned.display_name,
            message=change.message,
        )
    )
    if change.outcome == Outcome.ADDED.value:
        base = applied.links.get(planned.user_id) or IdentityLink(
            user_id=planned.user_id,
            directory_id=planned.directory_id,
            matched_email=planned.email,
            matched_by="mail",
            added_by_sync=False,
        )
        applied.links[planned.user_id] = IdentityLink(
            user_id=base.user_id,
            directory_id=planned.directory_id,
            matched_email=base.matched_email,
            matched_by=base.matched_by,
            added_by_sync=True,
        )
    if change.outcome != Outcome.ALREADY_MEMBER.value:
        succeeded = change.outcome == Outcome.ADDED.value
        applied.audit.append(
            audit_event(
                inputs,
                action="member.add",
                target=planned.email,
                succeeded=succeeded,
                detail=change.message if not succeeded else f"directory id {planned.directory_id}",
                request_id=change.request_id,
            )
        )


def note_removal(
    inputs: SyncInputs, applied: AppliedChanges, removal: PlannedRemoval, change: MemberChange
) -> None:
    """The outcome of removing one member; a removed member's link is forgotten."""
    applied.rows.append(
        OutcomeRow(
            outcome=change.outcome,
            user_id=removal.user_id,
            directory_id=removal.directory_id,
            email=removal.email,
            display_name=removal.display_name,
            message=change.message,
        )
    )
    succeeded = change.outcome == Outcome.REMOVED.value
    applied.audit.append(
        audit_event(
            inputs,
            action="member.remove",
            target=removal.email or removal.directory_id,
            succeeded=succeeded,
            detail=change.message,
            request_id=change.request_id,
        )
    )
    if succeeded:
        applied.forget_links.add(removal.user_id)


def note_not_in_tenant(applied: AppliedChanges, planned: PlannedMember) -> None:
    """A member whose directory user vanished between planning and adding: no user has the address any more."""
    applied.rows.append(
        OutcomeRow(
            outcome=Outcome.NOT_IN_TENANT.value,
            user_id=planned.user_id,
            email=planned.email,
            display_name=planned.display_name,
            message="No directory user has this address.",
        )
    )
    applied.links.pop(planned.user_id, None)
    applied.forget_links.add(planned.user_id)


def dry_run_rows(plan: SyncPlan) -> list[OutcomeRow]:
    """What a real run would do, as outcomes: every planned add and removal."""
    rows = [
        OutcomeRow(
            outcome=Outcome.ADDED.value,
            user_id=p.user_id,
            directory_id=p.directory_id,
            email=p.email,
            display_name=p.display_name,
        )
        for p in plan.adds
    ]
    rows += [
        OutcomeRow(
            outcome=Outcome.REMOVED.value,
            user_id=r.user_id,
            directory_id=r.directory_id,
            email=r.email,
            display_name=r.display_name,
        )
        for r in plan.removals
    ]
    return rows


def plan_rows(plan: SyncPlan) -> list[OutcomeRow]:
    """Outcomes decided by the plan alone (they need no write): flagged and not in the tenant."""
    rows = [
        OutcomeRow(
            outcome=Outcome.FLAGGED.value,
            directory_id=f.id,
            email=f.mail or f.user_principal_name,
            display_name=f.display_name,
            message="In the group, not on the team.",
        )
        for f in plan.flagged
    ]
    rows += [
        OutcomeRow(
            outcome=Outcome.NOT_IN_TENANT.value,
            user_id=m.user_id,
            email=m.email,
            display_name=m.display_name,
            message=f"No directory user has the address {m.email}.",
        )
        for m in plan.not_in_tenant
    ]
    rows += [
        OutcomeRow(
            outcome=Outcome.EXCLUDED.value,
            user_id=m.user_id,
            email=m.email,
            display_name=m.display_name,
            message="An admin removed them from the group; they are not added back until allowed again.",
        )
        for m in plan.excluded
    ]
    return rows


# --- writing ------------------------------------------------------------------------------------------------


class Recorder:
    """Writes a run's outcomes, audit events and identity links chunk by chunk, each in its own short transaction."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        inputs: SyncInputs,
        run_id: uuid.UUID,
        *,
        last_seq: int = 0,
    ):
        self._session_factory = session_factory
        self._inputs = inputs
        self._run_id = run_id
        self._seq = last_seq  # a run queued again numbers its outcomes after those it kept
        self.counts = {o.value: 0 for o in Outcome}

    async def record(self, changes: AppliedChanges, *, store_links: bool = True) -> None:
        for row in changes.rows:
            self.counts[row.outcome] = self.counts.get(row.outcome, 0) + 1
        rows = [r for r in changes.rows if r.outcome != Outcome.ALREADY_MEMBER.value]
        if not (rows or changes.audit or (store_links and (changes.links or changes.forget_links))):
            return
        async with self._session_factory() as session:
            await store_outcomes(session, self._run_id, rows, first_seq=self._seq + 1)
            self._seq += len(rows)
            if store_links:
                await store_links_of(session, self._inputs, changes)
            if changes.audit:
                await session.execute(insert(AuditEvent), changes.audit)
            await session.commit()


async def store_outcomes(
    session: AsyncSession, run_id: uuid.UUID, rows: list[OutcomeRow], *, first_seq: int = 1
) -> None:
    for start in range(0, len(rows), OUTCOME_ROWS_PER_INSERT):
        chunk = rows[start : start + OUTCOME_ROWS_PER_INSERT]
        await session.execute(
            insert(SyncOutcome),
            [
                {
                    "id": uuid.uuid4(),
                    "run_id": run_id,
                    "seq": first_seq + start + index,
                    "outcome": row.outcome,
                    "user_id": row.user_id,
                    "directory_id": row.directory_id,
                    "email": row.email,
                    "display_name": (row.display_name or "")[:DISPLAY_NAME_MAX] or None,
                    "message": row.message,
                }
                for index, row in enumerate(chunk)
            ],
        )


async def store_links_of(session: AsyncSession, inputs: SyncInputs, applied: AppliedChanges) -> None:
    """Write the chunk's identity links, and forget the links of members who left (unless linked again)."""
    forget = applied.forget_links - set(applied.links)
    if forget:
        await session.execute(
            delete(MicrosoftMember).where(
                MicrosoftMember.organization_id == inputs.organization_id, MicrosoftMember.user_id.in_(forget)
            )
        )
    if not applied.links:
        return
    existing = {
        m.user_id: m
        for m in await session.scalars(
            select(MicrosoftMember).where(
                MicrosoftMember.organization_id == inputs.organization_id,
                MicrosoftMember.user_id.in_(list(applied.links)),
            )
        )
    }
    for user_id, link in applied.links.items():
        row = existing.get(user_id)
        if row is None:
            session.add(
                MicrosoftMember(
                    organization_id=inputs.organization_id,
                    group_id=inputs.group_id,
                    user_id=user_id,
                    directory_id=link.directory_id,
                    matched_by=link.matched_by,
                    matched_email=link.matched_email,
                    added_by_sync=link.added_by_sync,
                )
            )
            continue
        # The sync added this person only if it says so now, or said so before for the same group and account.
        same_account = row.group_id == inputs.group_id and row.directory_id == link.directory_id
        row.added_by_sync = link.added_by_sync or (row.added_by_sync and same_account)
        row.group_id = inputs.group_id
        row.directory_id = link.directory_id
        row.matched_by = link.matched_by
        row.matched_email = link.matched_email


async def store_flags(session: AsyncSession, inputs: SyncInputs, plan: SyncPlan) -> int:
    """Upsert this run's flags and clear the ones that no longer apply; returns how many are new."""
    now = utcnow()
    # Flags and dismissals of a group linked before belong to it: this group's start fresh.
    await session.execute(
        delete(FlaggedMember).where(
            FlaggedMember.organization_id == inputs.organization_id,
            or_(FlaggedMember.group_id.is_(None), FlaggedMember.group_id != inputs.group_id),
        )
    )
    existing = {
        f.directory_id: f
        for f in await session.scalars(
            select(FlaggedMember).where(FlaggedMember.organization_id == inputs.organization_id)
        )
    }
    flagged_ids = set()
    new = 0
    for member in plan.flagged:
        flagged_ids.add(member.id)
        row = existing.get(member.id)
        if row is None:
            new += 1
            session.add(
                FlaggedMember(
                    organization_id=inputs.organization_id,
                    group_id=inputs.group_id,
                    directory_id=member.id,
                    display_name=(member.display_name or None) and member.display_name[:DISPLAY_NAME_MAX],
                    email=member.mail,
                    user_principal_name=member.user_principal_name,
                    user_type=member.user_type,
                    status=FlagStatus.PENDING.value,
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
        else:
            row.last_seen_at = now
            row.display_name = (member.display_name or None) and member.display_name[:DISPLAY_NAME_MAX]
            row.email = member.mail
            row.user_principal_name = member.user_principal_name
    # A flag clears by itself once the person is on the team or out of the group; dismissals are kept.
    cleared = [
        f.id for d, f in existing.items() if d not in flagged_ids and f.status != FlagStatus.DISMISSED.value
    ]
    if cleared:
        await session.execute(delete(FlaggedMember).where(FlaggedMember.id.in_(cleared)))
    return new
