"""Running one sync: read the team, stream the group, resolve, plan, apply, and record what happened.

A job is not a request: it uses one short DB session per unit of work (read the inputs, each heartbeat, the final
write), so a long run never holds a transaction open while it talks to Microsoft. The final state is always
written, whatever goes wrong; a run stopped half-way (a killed worker) converges on the next run because every
step is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.metrics import record_sync_run
from equa.microsoft.audit import FAILURE, SUCCESS
from equa.microsoft.graph import GraphClient, GraphError, GraphNotFound, GraphUsage, measure_usage
from equa.microsoft.models import (
    AuditEvent,
    FlaggedMember,
    FlagStatus,
    MicrosoftMember,
    Outcome,
    RunStatus,
    SyncOutcome,
    SyncRun,
)
from equa.microsoft.own_writes import own_writes
from equa.microsoft.sync import apply as applying
from equa.microsoft.sync.plan import (
    DirectoryUser,
    IdentityLink,
    PlannedMember,
    SyncPlan,
    SyncPlanner,
    SyncPolicy,
    TeamMember,
)
from equa.microsoft.sync.resolve import resolve_addresses
from equa.microsoft.sync.runs import LEASE, beat, claim_run, finish_run
from equa.organizations.models import Membership, Organization

log = logging.getLogger("equa.microsoft.sync")

MISSING_RETRY_DELAYS = (1.0, 2.0, 4.0)  # seconds; a just-created group or user can take a moment to replicate
OUTCOME_ROWS_PER_INSERT = 1000
# Members added (and recorded) per step: exactly the $batch envelopes the apply step keeps in flight at once.
ADD_CHUNK = applying.MEMBERS_PER_PATCH * applying.REQUESTS_PER_BATCH * applying.BATCHES_IN_FLIGHT


@dataclass
class Progress:
    """Shared between the run and its heartbeat; also what the CLI's progress bar shows."""

    phase: str = "starting"
    done: int = 0
    total: int = 0
    newly_flagged: int = 0
    listeners: list[Callable[[Progress], None]] = field(default_factory=list)

    def set_phase(self, phase: str, total: int | None = None) -> None:
        self.phase = phase
        if total is not None:
            self.total = total
            self.done = 0
        self._notify()

    def advance(self, count: int) -> None:
        self.done += count
        self._notify()

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self)


@dataclass
class SyncInputs:
    organization_id: uuid.UUID
    group_id: str
    actor_id: uuid.UUID | None
    dry_run: bool
    team: list[TeamMember]
    links: list[IdentityLink]
    dismissed: set[str]
    policy: SyncPolicy


@dataclass
class OutcomeRow:
    outcome: str
    user_id: uuid.UUID | None = None
    directory_id: str | None = None
    email: str | None = None
    display_name: str | None = None
    message: str | None = None


class RunAbandoned(Exception):
    """The run was marked abandoned by someone else (its heartbeat was late): stop quietly."""


async def load_inputs(session: AsyncSession, run: SyncRun) -> SyncInputs | None:
    organization = await session.get(Organization, run.organization_id)
    if organization is None or organization.microsoft_group is None:
        return None
    rows = await session.execute(
        select(User.id, User.email_normalized, User.display_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization.id, User.is_active.is_(True))
    )
    team = [TeamMember(user_id, email, name) for user_id, email, name in rows]
    link_rows = await session.scalars(
        select(MicrosoftMember).where(MicrosoftMember.organization_id == organization.id)
    )
    links = [
        IdentityLink(m.user_id, m.directory_id, m.matched_email, m.matched_by, m.added_by_sync)
        for m in link_rows
    ]
    dismissed = set(
        await session.scalars(
            select(FlaggedMember.directory_id).where(
                FlaggedMember.organization_id == organization.id,
                FlaggedMember.status == FlagStatus.DISMISSED.value,
            )
        )
    )
    return SyncInputs(
        organization_id=organization.id,
        group_id=str(organization.microsoft_group),
        actor_id=run.requested_by,
        dry_run=run.dry_run,
        team=team,
        links=links,
        dismissed=dismissed,
        policy=SyncPolicy(remove_departed=organization.microsoft_remove_departed),
    )


async def build_plan(graph: GraphClient, inputs: SyncInputs, progress: Progress) -> SyncPlan:
    planner = SyncPlanner(inputs.team, inputs.links, inputs.policy, inputs.dismissed)
    progress.set_phase("listing", total=0)
    for attempt in range(len(MISSING_RETRY_DELAYS) + 1):
        try:
            async for member in applying.list_group_members(graph, inputs.group_id):
                planner.observe(member)
                progress.advance(1)
            break
        except GraphNotFound:
            # A group created moments ago may not have replicated yet; one that is really gone stays 404.
            if progress.done or attempt == len(MISSING_RETRY_DELAYS):
                raise
            await asyncio.sleep(MISSING_RETRY_DELAYS[attempt])
    addresses = planner.addresses_to_resolve()
    progress.set_phase("resolving", total=len(addresses))
    resolved: dict[str, DirectoryUser] = await resolve_addresses(graph, addresses) if addresses else {}
    progress.advance(len(addresses))
    owners: set[str] = set()
    if planner.removal_candidates():
        owners = await applying.list_group_owner_ids(graph, inputs.group_id)
    return planner.finish(resolved, owners)


@dataclass
class AppliedChanges:
    """One chunk's results: written at once, then dropped, so a run's memory does not grow with the team."""

    rows: list[OutcomeRow] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    links: dict[uuid.UUID, IdentityLink] = field(default_factory=dict)
    forget_links: set[uuid.UUID] = field(default_factory=set)


def _audit(
    inputs: SyncInputs, action: str, target: str, outcome: str, detail: str | None, request_id: str | None
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "organization_id": inputs.organization_id,
        "actor_user_id": inputs.actor_id,
        "action": action,
        "target": target,
        "outcome": outcome,
        "detail": detail,
        "graph_request_id": request_id,
        "created_at": utcnow(),
    }


class Recorder:
    """Writes a run's outcomes, audit events and identity links chunk by chunk, each in its own short transaction.

    A run stopped half-way keeps what it recorded; the next run plans from the group as it is, so nothing is
    done twice. alreadyMember outcomes are counted, not stored.
    """

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], inputs: SyncInputs, run_id: uuid.UUID
    ):
        self._session_factory = session_factory
        self._inputs = inputs
        self._run_id = run_id
        self._seq = 0
        self.counts = {o.value: 0 for o in Outcome}

    async def record(self, changes: AppliedChanges, *, store_links: bool = True) -> None:
        for row in changes.rows:
            self.counts[row.outcome] = self.counts.get(row.outcome, 0) + 1
        rows = [r for r in changes.rows if r.outcome != Outcome.ALREADY_MEMBER.value]
        if not (rows or changes.audit or (store_links and (changes.links or changes.forget_links))):
            return
        async with self._session_factory() as session:
            await _store_outcomes(session, self._run_id, rows, first_seq=self._seq + 1)
            self._seq += len(rows)
            if store_links:
                await _store_links(session, self._inputs, changes)
            if changes.audit:
                await session.execute(insert(AuditEvent), changes.audit)
            await session.commit()


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def apply_plan(
    graph: GraphClient, inputs: SyncInputs, plan: SyncPlan, progress: Progress, recorder: Recorder
) -> None:
    """Send the plan's writes a chunk at a time; every member gets one outcome and every change one audit event."""
    progress.set_phase("applying", total=len(plan.adds) + len(plan.removals))
    pending_links = {link.user_id: link for link in plan.links}
    for chunk in _chunks(plan.adds, ADD_CHUNK):
        applied = AppliedChanges()
        for planned in chunk:
            link = pending_links.pop(planned.user_id, None)
            if link is not None:
                applied.links[planned.user_id] = link
        await _add_chunk(graph, inputs, chunk, applied, progress)
        await recorder.record(applied)

    for chunk in _chunks(plan.removals, ADD_CHUNK):
        applied = AppliedChanges()
        removals = {r.directory_id: r for r in chunk}
        for change in await applying.remove_members(graph, inputs.group_id, list(removals), progress.advance):
            removal = removals[change.directory_id]
            applied.rows.append(
                OutcomeRow(
                    change.outcome, removal.user_id, removal.directory_id, removal.email, None, change.message
                )
            )
            succeeded = change.outcome == Outcome.REMOVED.value
            applied.audit.append(
                _audit(
                    inputs,
                    "member.remove",
                    removal.email or removal.directory_id,
                    SUCCESS if succeeded else FAILURE,
                    change.message,
                    change.request_id,
                )
            )
            if succeeded:
                applied.forget_links.add(removal.user_id)
        await recorder.record(applied)

    # Links that need no write (members already in the group, found under a new address), then the forgotten.
    rest = list(pending_links.values())
    for chunk in _chunks(rest, ADD_CHUNK):
        await recorder.record(AppliedChanges(links={link.user_id: link for link in chunk}))
    if plan.forget_links:
        await recorder.record(AppliedChanges(forget_links=set(plan.forget_links)))


async def _add_chunk(
    graph: GraphClient,
    inputs: SyncInputs,
    chunk: list[PlannedMember],
    applied: AppliedChanges,
    progress: Progress,
) -> None:
    pending: list[PlannedMember] = list(chunk)
    for attempt in range(len(MISSING_RETRY_DELAYS) + 1):
        by_id = {p.directory_id: p for p in pending}
        changes = await applying.add_members(graph, inputs.group_id, list(by_id), progress.advance)
        missing: list[PlannedMember] = []
        for change in changes:
            planned = by_id[change.directory_id]
            if change.outcome == applying.MISSING:
                missing.append(planned)
                continue
            if change.outcome == Outcome.ADDED.value:
                # Counted and listed by this process at once, though Graph shows it only once replicated.
                listed = {
                    "id": planned.directory_id,
                    "mail": planned.email,
                    "displayName": planned.display_name,
                }
                own_writes.changed(
                    graph.tenant, inputs.group_id, planned.directory_id, present=True, member=listed
                )
            _record_add(inputs, applied, planned, change)
        if not missing:
            return
        if attempt == len(MISSING_RETRY_DELAYS):
            for planned in missing:
                message = (
                    "Microsoft 365 does not find this user or the group yet (a new object can take a while "
                    "to replicate); the next sync tries again."
                )
                _record_add(
                    inputs,
                    applied,
                    planned,
                    applying.MemberChange(planned.directory_id, Outcome.FAILED.value, message),
                )
            return
        # The directory id may be gone (account deleted and re-created): look the addresses up again.
        found = await resolve_addresses(graph, [p.email for p in missing])
        pending = []
        for planned in missing:
            user = found.get(planned.email)
            if user is None:
                applied.rows.append(
                    OutcomeRow(
                        Outcome.NOT_IN_TENANT.value,
                        planned.user_id,
                        None,
                        planned.email,
                        planned.display_name,
                        "No directory user has this address.",
                    )
                )
                applied.links.pop(planned.user_id, None)
                applied.forget_links.add(planned.user_id)
                continue
            if user.id != planned.directory_id:
                applied.links[planned.user_id] = IdentityLink(
                    planned.user_id, user.id, planned.email, user.matched_by or "mail", False
                )
            pending.append(PlannedMember(planned.user_id, planned.email, planned.display_name, user.id))
        if not pending:
            return
        if all(p.directory_id in {m.directory_id for m in missing} for p in pending):
            # Same users as before: the group (or user) is still replicating; give it a moment.
            await asyncio.sleep(MISSING_RETRY_DELAYS[attempt])


def _record_add(
    inputs: SyncInputs, applied: AppliedChanges, planned: PlannedMember, change: applying.MemberChange
) -> None:
    applied.rows.append(
        OutcomeRow(
            change.outcome,
            planned.user_id,
            planned.directory_id,
            planned.email,
            planned.display_name,
            change.message,
        )
    )
    if change.outcome in (Outcome.ADDED.value, Outcome.ALREADY_MEMBER.value):
        link = applied.links.get(planned.user_id)
        if change.outcome == Outcome.ADDED.value:
            base = link or IdentityLink(planned.user_id, planned.directory_id, planned.email, "mail", False)
            applied.links[planned.user_id] = IdentityLink(
                base.user_id, planned.directory_id, base.matched_email, base.matched_by, True
            )
    if change.outcome != Outcome.ALREADY_MEMBER.value:
        succeeded = change.outcome == Outcome.ADDED.value
        applied.audit.append(
            _audit(
                inputs,
                "member.add",
                planned.email,
                SUCCESS if succeeded else FAILURE,
                change.message if not succeeded else f"directory id {planned.directory_id}",
                change.request_id,
            )
        )


def dry_run_rows(plan: SyncPlan) -> list[OutcomeRow]:
    rows = [
        OutcomeRow(Outcome.ADDED.value, p.user_id, p.directory_id, p.email, p.display_name) for p in plan.adds
    ]
    rows += [OutcomeRow(Outcome.REMOVED.value, r.user_id, r.directory_id, r.email) for r in plan.removals]
    return rows


def plan_rows(plan: SyncPlan) -> list[OutcomeRow]:
    """Outcomes decided by the plan alone (they need no write): flagged and not in the tenant."""
    rows = [
        OutcomeRow(
            Outcome.FLAGGED.value,
            None,
            f.id,
            f.mail or f.user_principal_name,
            f.display_name,
            "In the group, not on the team.",
        )
        for f in plan.flagged
    ]
    rows += [
        OutcomeRow(
            Outcome.NOT_IN_TENANT.value,
            m.user_id,
            None,
            m.email,
            m.display_name,
            f"No directory user has the address {m.email}.",
        )
        for m in plan.not_in_tenant
    ]
    return rows


async def _store_outcomes(
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
                    "display_name": (row.display_name or "")[:256] or None,
                    "message": row.message,
                }
                for index, row in enumerate(chunk)
            ],
        )


async def _store_links(session: AsyncSession, inputs: SyncInputs, applied: AppliedChanges) -> None:
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
                    user_id=user_id,
                    directory_id=link.directory_id,
                    matched_by=link.matched_by,
                    matched_email=link.matched_email,
                    added_by_sync=link.added_by_sync,
                )
            )
        else:
            row.directory_id = link.directory_id
            row.matched_by = link.matched_by
            row.matched_email = link.matched_email
            row.added_by_sync = link.added_by_sync or (
                row.added_by_sync and row.directory_id == link.directory_id
            )


async def _store_flags(session: AsyncSession, inputs: SyncInputs, plan: SyncPlan) -> int:
    """Upsert this run's flags and clear the ones that no longer apply; returns how many are new."""
    now = utcnow()
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
                    directory_id=member.id,
                    display_name=(member.display_name or None) and member.display_name[:256],
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
            row.display_name = (member.display_name or None) and member.display_name[:256]
            row.email = member.mail
            row.user_principal_name = member.user_principal_name
    # A flag clears by itself once the person is on the team or out of the group; dismissals are kept.
    cleared = [
        f.id for d, f in existing.items() if d not in flagged_ids and f.status != FlagStatus.DISMISSED.value
    ]
    if cleared:
        await session.execute(delete(FlaggedMember).where(FlaggedMember.id.in_(cleared)))
    return new


async def execute_run(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    run_id: uuid.UUID,
    *,
    progress: Progress | None = None,
    lease_seconds: int | None = None,
) -> str | None:
    """Claim and run one queued sync; returns its final status (None if another worker had claimed it)."""
    run = await claim_run(session_factory, run_id)
    if run is None:
        return None
    progress = progress or Progress()
    lease = lease_seconds or LEASE.seconds
    work = asyncio.current_task()
    lost = asyncio.Event()

    async def heartbeat() -> None:
        interval = max(0.5, lease / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                alive = await beat(
                    session_factory, run_id, done=progress.done, total=progress.total, phase=progress.phase
                )
            except Exception:  # a missed heartbeat is not fatal; the next one may get through
                log.warning("sync run %s: heartbeat failed", run_id, exc_info=True)
                continue
            if not alive:
                lost.set()
                if work is not None:
                    work.cancel()
                return

    # Everything the run sends to Graph, from any of its tasks, and nothing another run sends.
    with measure_usage() as usage:
        beating = asyncio.create_task(heartbeat())
        status = RunStatus.FAILED.value
        started = time.monotonic()
        try:
            status = await _run(session_factory, graph, run, progress, usage)
            return status
        except asyncio.CancelledError:
            if lost.is_set():
                log.warning("sync run %s was marked abandoned while running; stopped", run_id)
                status = RunStatus.ABANDONED.value
                return status
            await _finish_failed(
                session_factory,
                run_id,
                "run_interrupted",
                "The sync was interrupted (the process is shutting down).",
                "Start the sync again; it picks up where this one stopped.",
                usage,
            )
            raise
        except GraphError as error:
            log.warning("sync run %s failed: %r", run_id, error)
            await _finish_failed(
                session_factory, run_id, error.code or "graph_error", error.message, error.action, usage
            )
            return RunStatus.FAILED.value
        except Exception:
            log.exception("sync run %s failed unexpectedly", run_id)
            await _finish_failed(
                session_factory,
                run_id,
                "internal_error",
                "The sync stopped on an unexpected error.",
                "Try again; if it persists, contact support with the run id.",
                usage,
            )
            return RunStatus.FAILED.value
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            record_sync_run(status, time.monotonic() - started, progress.newly_flagged)


def graph_stats_json(usage: GraphUsage) -> dict[str, int]:
    """A run's Graph traffic as SyncRun.graph_stats stores it (and the API shows it)."""
    return {
        "requests": usage.requests,
        "batchSubrequests": usage.batch_subrequests,
        "throttled": usage.throttled,
        "retries": usage.retries,
    }


async def _finish_failed(
    session_factory: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    code: str,
    message: str,
    action: str | None,
    usage: GraphUsage | None = None,
) -> None:
    async with session_factory() as session:
        await finish_run(
            session,
            run_id,
            status=RunStatus.FAILED.value,
            graph_stats=graph_stats_json(usage) if usage is not None else None,
            error_code=code,
            error_message=message,
            error_action=action,
        )
        await session.commit()


async def _run(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    run: SyncRun,
    progress: Progress,
    usage: GraphUsage,
) -> str:
    async with session_factory() as session:
        inputs = await load_inputs(session, run)
    if inputs is None:
        await _finish_failed(
            session_factory,
            run.id,
            "group_not_linked",
            "The organization no longer has a Microsoft 365 group linked.",
            "Link a group, then sync again.",
        )
        return RunStatus.FAILED.value

    plan = await build_plan(graph, inputs, progress)
    # The plan holds what the next steps need; the team and the old links are no longer.
    inputs.team, inputs.links = [], []
    recorder = Recorder(session_factory, inputs, run.id)
    if inputs.dry_run:
        for chunk in _chunks(dry_run_rows(plan), ADD_CHUNK):
            await recorder.record(AppliedChanges(rows=chunk), store_links=False)
    else:
        await apply_plan(graph, inputs, plan, progress, recorder)
    for chunk in _chunks(plan_rows(plan), ADD_CHUNK):
        await recorder.record(AppliedChanges(rows=chunk), store_links=False)
    counts = dict(recorder.counts)
    counts[Outcome.ALREADY_MEMBER.value] += len(plan.already_members)
    counts["dismissedInGroup"] = plan.dismissed_in_group
    status = RunStatus.PARTIAL.value if counts[Outcome.FAILED.value] else RunStatus.SUCCEEDED.value

    progress.set_phase("recording")
    async with session_factory() as session:
        if not inputs.dry_run:
            progress.newly_flagged = await _store_flags(session, inputs, plan)
        finished = await finish_run(
            session,
            run.id,
            status=status,
            counts=counts,
            graph_stats=graph_stats_json(usage),
            done=progress.done,
            total=progress.total,
            error_code="some_members_failed" if status == RunStatus.PARTIAL.value else None,
            error_message=(
                f"{counts[Outcome.FAILED.value]} member(s) could not be changed."
                if status == RunStatus.PARTIAL.value
                else None
            ),
            error_action=(
                "Run the sync again: it retries only what is left."
                if status == RunStatus.PARTIAL.value
                else None
            ),
        )
        # Even when the run was marked abandoned meanwhile, the changes it made in Microsoft 365 are real:
        # their links, flags and audit events are kept (links and audit events were written as they happened).
        await session.commit()
    return status if finished else RunStatus.ABANDONED.value
