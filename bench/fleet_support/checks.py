"""What the bench checks and measures: lower bounds, convergence, double work, and start delays."""

from __future__ import annotations

import itertools
import math
import statistics
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleet_support.changes import Expectations
from fleet_support.model import FleetModel

PEOPLE_PER_LOOKUP_BATCH = 300  # 15 addresses per $filter, 20 lookups per $batch
MEMBERS_PER_WRITE_BATCH = 400  # 20 members per PATCH, 20 PATCHes per $batch
MEMBERS_PER_WRITE = 20
MEMBERS_PER_PAGE = 999
GROUPS_PER_DELTA_ROUND = 50


def org_lower_bound(members: int, to_add: int) -> int:
    """Graph requests a first sync of one group needs at least (bench/sync_bench.py's bound)."""
    return (
        max(1, math.ceil(members / MEMBERS_PER_PAGE))
        + math.ceil(to_add / PEOPLE_PER_LOOKUP_BATCH)
        + math.ceil(to_add / MEMBERS_PER_WRITE_BATCH)
    )


def first_lower_bound(emulator: Any, model: FleetModel) -> int:
    total = 0
    for org in model.orgs:
        members = set(emulator.directory.tenants[org.tenant_id].members[org.group_id].ordered())
        to_add = sum(1 for u in org.team if model.directory_of_user[u] not in members)
        total += org_lower_bound(len(members), to_add)
    return total


def idle_bound(model: FleetModel) -> int:
    """One delta request per round of up to 50 linked groups, per tenant."""
    return sum(math.ceil(len(orgs) / GROUPS_PER_DELTA_ROUND) for orgs in model.tenants().values())


def write_quota_seconds(emulator: Any, model: FleetModel, settings: Any) -> float:
    """The slowest tenant's bound on the first reconcile's wall time from its write budget: the writes it needs
    (a PATCH per 20 members to add), less the bucket's first fill, at the budget's refill rate."""
    from equa.microsoft.graph.pacing import WRITES

    capacity = float(settings.graph_write_budget)
    rate = capacity / WRITES.window
    slowest = 0.0
    for orgs in model.tenants().values():
        writes = 0
        for org in orgs:
            members = set(emulator.directory.tenants[org.tenant_id].members[org.group_id].ordered())
            to_add = sum(1 for u in org.team if model.directory_of_user[u] not in members)
            writes += math.ceil(to_add / MEMBERS_PER_WRITE)
        slowest = max(slowest, max(0.0, writes - capacity) / rate)
    return slowest


@dataclass
class RunFacts:
    id: uuid.UUID
    organization_id: uuid.UUID
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    trigger: str


async def run_facts(session_factory: Any, since: datetime) -> list[RunFacts]:
    from sqlalchemy import select

    from equa.microsoft.models import SyncRun

    async with session_factory() as session:
        rows = await session.execute(
            select(
                SyncRun.id,
                SyncRun.organization_id,
                SyncRun.created_at,
                SyncRun.started_at,
                SyncRun.finished_at,
                SyncRun.status,
                SyncRun.trigger,
            ).where(SyncRun.created_at >= since)
        )
        return [RunFacts(*row) for row in rows]


def overlapping_runs(runs: list[RunFacts]) -> int:
    """Organizations with two runs whose running times overlap."""
    by_org: dict[uuid.UUID, list[RunFacts]] = {}
    for run in runs:
        if run.started_at is not None:
            by_org.setdefault(run.organization_id, []).append(run)
    overlapping = 0
    for org_runs in by_org.values():
        org_runs.sort(key=lambda r: r.started_at)  # type: ignore[arg-type,return-value]
        for before, after in itertools.pairwise(org_runs):
            if before.finished_at is None or (
                after.started_at is not None and after.started_at < before.finished_at
            ):
                overlapping += 1
                break
    return overlapping


def twice_written(emulator: Any, marks: dict[str, int], hand: set[tuple[str, str]]) -> int:
    """Memberships the app wrote more than once since `marks` (each tenant's next change sequence then):
    emulator change events per (group, member), the bench's own hand changes left out."""
    twice = 0
    for tenant_id, since in marks.items():
        tenant = emulator.directory.tenants[tenant_id]
        writes: Counter[tuple[str, str]] = Counter(
            (event.group_id, event.member_id)
            for event in tenant.changes
            if event.seq >= since and event.kind in ("add", "remove") and event.member_id is not None
        )
        twice += sum(1 for key, count in writes.items() if count - (1 if key in hand else 0) > 1)
    return twice


def change_marks(emulator: Any, tenant_ids: Collection[str]) -> dict[str, int]:
    return {tenant_id: emulator.directory.tenants[tenant_id].next_seq for tenant_id in tenant_ids}


def start_delays(
    runs: list[RunFacts],
    due: datetime,
    *,
    only: Collection[uuid.UUID] | None = None,
    leave_out: Collection[uuid.UUID] = (),
) -> tuple[list[float], list[float]]:
    """Seconds from `due` (the cycle's start, when every organization's run was due) to each run's start, and
    from each run's request (the cycle asking for it) to its start; runs of `only` (run ids), organizations of
    `leave_out` left out."""
    from_due: list[float] = []
    from_request: list[float] = []
    for run in runs:
        if (
            run.started_at is None
            or run.organization_id in leave_out
            or (only is not None and run.id not in only)
        ):
            continue
        from_due.append((run.started_at - due).total_seconds())
        from_request.append((run.started_at - run.created_at).total_seconds())
    return from_due, from_request


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


async def added_by_sync(session_factory: Any) -> dict[uuid.UUID, set[str]]:
    from sqlalchemy import select

    from equa.microsoft.models import MicrosoftMember

    async with session_factory() as session:
        rows = await session.execute(
            select(MicrosoftMember.organization_id, MicrosoftMember.directory_id).where(
                MicrosoftMember.added_by_sync.is_(True)
            )
        )
        found: dict[uuid.UUID, set[str]] = {}
        for org_id, directory_id in rows:
            found.setdefault(org_id, set()).add(directory_id)
        return found


async def _by_org(session_factory: Any, statement: Any) -> dict[uuid.UUID, set[Any]]:
    async with session_factory() as session:
        found: dict[uuid.UUID, set[Any]] = {}
        for org_id, value in await session.execute(statement):
            found.setdefault(org_id, set()).add(value)
        return found


async def unconverged(
    session_factory: Any, emulator: Any, model: FleetModel, expect: Expectations
) -> list[str]:
    """Organizations whose group disagrees with what Equa says (one line each; empty: every one converged).

    In the group: every active team member not excluded. Out of it: the excluded, and the departed the sync had
    added. Anyone else in the group is flagged or noted as added by hand."""
    from sqlalchemy import select

    from equa.accounts.models import User
    from equa.microsoft.models import FlaggedMember, HandAddedMember, MicrosoftExclusion
    from equa.organizations.models import Membership

    teams = await _by_org(
        session_factory,
        select(Membership.organization_id, Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(User.is_active.is_(True)),
    )
    excluded = await _by_org(
        session_factory, select(MicrosoftExclusion.organization_id, MicrosoftExclusion.user_id)
    )
    flagged = await _by_org(
        session_factory, select(FlaggedMember.organization_id, FlaggedMember.directory_id)
    )
    hand = await _by_org(
        session_factory, select(HandAddedMember.organization_id, HandAddedMember.directory_id)
    )
    problems: list[str] = []
    for org in model.orgs:
        group = set(emulator.directory.tenants[org.tenant_id].members[org.group_id].ordered())
        out = {model.directory_of_user[u] for u in excluded.get(org.id, set())}
        team = {model.directory_of_user[u] for u in teams.get(org.id, set())}
        missing = team - out - group
        kept = (out | expect.departed.get(org.id, set())) & group
        unexplained = group - team - flagged.get(org.id, set()) - hand.get(org.id, set())
        not_recorded = expect.excluded.get(org.id, set()) - out
        if missing or kept or unexplained or not_recorded:
            problems.append(
                f"{org.id}: {len(missing)} missing, {len(kept)} kept though out, {len(unexplained)} strangers "
                f"not flagged, {len(not_recorded)} removals by hand not recorded as exclusions"
            )
    return problems
