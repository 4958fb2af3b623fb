"""One tenant's delta rounds in a cycle: resume each round from its deltaLink, turn what changed into pending
changes of the organizations it concerns, restart expired rounds, and start rounds for groups not yet watched.

A round's new deltaLink and the pending changes it saw are written in one transaction, so a crash between the two
never loses a change (the old deltaLink is resumed again) nor records one twice in a way that matters (the fold is
idempotent). A group not yet watched (newly linked, autoSync turned back on, the first cycle after an upgrade)
starts with `$deltatoken=latest` (no data, one request per 50 groups) and gets a full reconcile (never reconciled,
or asked for with the round, in one transaction): it reads the members after the token is taken, so nothing falls
in between. That one request per 50 new groups cannot be folded into anything cheaper: a token's filter is fixed,
so new groups cannot join an existing round's token, and the only other way to a token, a first round without
`latest`, reads every member as well. Rounds left with free places by unlinks, and the small rounds of groups
linked over time, are merged by compaction.py.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.fleet.compaction import groups_to_merge, take_over, take_successors
from equa.microsoft.fleet.fold import differences
from equa.microsoft.fleet.models import ChangeKind, DeltaRound, PendingChange
from equa.microsoft.fleet.sessions import SessionOpener
from equa.microsoft.graph import GraphClient, GraphError
from equa.microsoft.graph.delta import (
    MAX_GROUPS_PER_ROUND,
    DeltaExpired,
    DeltaRoundResult,
    resume_delta_round,
    start_delta_round,
)

log = logging.getLogger("equa.microsoft.fleet")


@dataclass
class TenantRounds:
    """What one tenant's rounds did in a cycle."""

    tenant_id: str
    requests: int = 0
    changed_groups: int = 0
    expired_groups: set[str] = field(default_factory=set)
    failed_rounds: int = 0
    merged_rounds: int = 0  # rounds replaced by compaction's successors this cycle


async def advance_rounds(
    session_factory: SessionOpener,
    graph: GraphClient,
    tenant_id: str,
    linked: dict[str, uuid.UUID],
    now: datetime,
) -> TenantRounds:
    """`linked`: the tenant's tracked groups (id, lower case) -> their organization; `now` decides whether
    compaction's successors are due."""
    report = TenantRounds(tenant_id)
    async with session_factory() as session:
        rounds = await fleet_repository.delta_rounds_of(session, tenant_id)
    successors = [r for r in rounds if r.takes_over_at is not None]
    tracked: set[str] = set()
    held: dict[uuid.UUID, list[str]] = {}  # each round read this cycle -> its linked groups
    for delta_round in rounds:
        if delta_round.takes_over_at is not None:
            continue  # a successor waiting to take over: not resumed
        groups = [g for g in delta_round.group_ids if g in linked and g not in tracked]
        if not groups or delta_round.delta_link is None:
            async with session_factory() as session:
                await fleet_repository.delete_round(session, delta_round.id)
                await session.commit()
            continue
        try:
            result = await resume_delta_round(graph, delta_round.delta_link)
        except DeltaExpired:
            log.info(
                "tenant %s: a delta round expired; %d group(s) get a full reconcile", tenant_id, len(groups)
            )
            report.requests += 1
            report.expired_groups.update(groups)
            async with session_factory() as session:
                await fleet_repository.delete_round(session, delta_round.id)
                for group_id in groups:
                    session.add(
                        PendingChange(organization_id=linked[group_id], kind=ChangeKind.RECONCILE.value)
                    )
                await session.commit()
            continue
        except GraphError as error:
            # Kept for the next cycle: the deltaLink still holds every change since it was issued.
            log.warning("tenant %s: a delta round failed (%s); tried again next cycle", tenant_id, error.code)
            report.failed_rounds += 1
            tracked.update(groups)
            continue
        report.requests += result.requests
        tracked.update(groups)
        held[delta_round.id] = groups
        async with session_factory() as session:
            report.changed_groups += await _note_changes(session, result, groups, linked)
            await fleet_repository.save_round(session, delta_round.id, groups, result.delta_link)
            await session.commit()
    if successors:
        # A round that failed this cycle has changes not yet read: its successors wait for a cycle that reads it.
        if not report.failed_rounds:
            covered, report.merged_rounds = await take_over(session_factory, tenant_id, successors, held, now)
            tracked.update(g for g in covered if g in linked)
    elif merged := groups_to_merge(held):
        report.requests += await take_successors(session_factory, graph, tenant_id, merged, now)
    await _start_rounds(session_factory, graph, tenant_id, sorted(set(linked) - tracked), linked, report)
    return report


async def _note_changes(
    session: AsyncSession, result: DeltaRoundResult, groups: list[str], linked: dict[str, uuid.UUID]
) -> int:
    changed = 0
    for group_id in groups:
        changes = result.groups.get(group_id)
        if changes is None:
            continue
        organization_id = linked[group_id]
        if changes.deleted:
            # The full sync's missing-group handling decides (deleted, restorable, or gone for good).
            session.add(PendingChange(organization_id=organization_id, kind=ChangeKind.RECONCILE.value))
            changed += 1
            continue
        added, removed = await differences(session, organization_id, group_id, changes.added, changes.removed)
        for kind, directory_ids in ((ChangeKind.ADDED, added), (ChangeKind.REMOVED, removed)):
            for directory_id in sorted(directory_ids):
                session.add(
                    PendingChange(organization_id=organization_id, kind=kind.value, directory_id=directory_id)
                )
        changed += bool(added or removed)
    return changed


async def _start_rounds(
    session_factory: SessionOpener,
    graph: GraphClient,
    tenant_id: str,
    new_groups: list[str],
    linked: dict[str, uuid.UUID],
    report: TenantRounds,
) -> None:
    """A round starts from now on, so what changed in its groups before is for a full reconcile to read: a group
    reconciled before and watched again (autoSync turned back on, the first cycle after an upgrade) may have
    changed while nobody watched it. A group never reconciled gets its full reconcile anyway (scheduling.py)."""
    if not new_groups:
        return
    async with session_factory() as session:
        reconciled = await fleet_repository.last_full_runs(session, {linked[g] for g in new_groups})
    for start in range(0, len(new_groups), MAX_GROUPS_PER_ROUND):
        chunk = new_groups[start : start + MAX_GROUPS_PER_ROUND]
        try:
            delta_link = await start_delta_round(graph, chunk)
        except GraphError as error:
            log.warning(
                "tenant %s: could not start a delta round (%s); tried again next cycle", tenant_id, error.code
            )
            report.failed_rounds += 1
            continue
        report.requests += 1
        async with session_factory() as session:
            session.add(DeltaRound(tenant_id=tenant_id, group_ids=chunk, delta_link=delta_link))
            for organization_id in {linked[g] for g in chunk} & reconciled.keys():
                session.add(PendingChange(organization_id=organization_id, kind=ChangeKind.RECONCILE.value))
            await session.commit()
