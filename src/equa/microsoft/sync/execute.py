"""Running one sync: read the team, stream the group, resolve, plan, apply, and record what happened.

A job is not a request: it uses one short DB session per unit of work (read the inputs, each heartbeat, each chunk
of results, the final write), so a long run never holds a transaction open while it talks to Microsoft. The final
state is always written, whatever goes wrong; a run stopped half-way (a killed worker) converges on the next run
because every step is idempotent. Where the pieces live: inputs.py (what a run starts from), recorder.py (outcomes,
links, flags, audit), lifecycle.py (claim, heartbeat, finish, abandon), policy.py (what a Graph error does to a run),
requeue.py (a run that meets an outage is queued again, keeping what it did).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.metrics import record_sync_run
from equa.microsoft.fleet.delta_run import DELTA_TRIGGER, run_delta
from equa.microsoft.graph import (
    GraphClient,
    GraphError,
    GraphNotFound,
    GraphUsage,
    measure_usage,
    while_replicating,
)
from equa.microsoft.groups import GroupMissing
from equa.microsoft.models import Outcome, RunStatus, SyncRun
from equa.microsoft.scope import GroupScope
from equa.microsoft.sync import apply as applying
from equa.microsoft.sync.inputs import SyncInputs, load_inputs
from equa.microsoft.sync.lifecycle import (
    DEFAULT_LEASE_SECONDS,
    Heartbeat,
    KeptWork,
    claim_run,
    finish_failed,
    finish_run,
    graph_stats_json,
    kept_work,
    still_linked,
)
from equa.microsoft.sync.plan import DirectoryUser, IdentityLink, PlannedMember, SyncPlan, SyncPlanner
from equa.microsoft.sync.policy import REPLICATION_DELAYS
from equa.microsoft.sync.progress import Progress
from equa.microsoft.sync.push_run import PUSH_TRIGGER, run_push
from equa.microsoft.sync.recorder import (
    AppliedChanges,
    Recorder,
    chunks,
    dry_run_rows,
    note_add,
    note_not_in_tenant,
    note_removal,
    plan_rows,
    store_flags,
)
from equa.microsoft.sync.requeue import (
    GAVE_UP_ACTION,
    NO_REQUEUES,
    RequeuePolicy,
    gave_up_message,
    is_outage,
    outage_code,
    requeue_after_outage,
)
from equa.microsoft.sync.resolve import resolve_addresses
from equa.microsoft.sync.stopping import (
    RunCancelled,
    cancelled_rows,
    finish_cancelled,
    raise_if_group_gone,
    refused_at_start,
)

log = logging.getLogger("equa.microsoft.sync")

# Members added (and recorded) per step: exactly the $batch envelopes the apply step keeps in flight at once.
ADD_CHUNK = applying.MEMBERS_PER_PATCH * applying.REQUESTS_PER_BATCH * applying.BATCHES_IN_FLIGHT
STILL_REPLICATING = (
    "Microsoft 365 does not find this user or the group yet (a new object can take a while to replicate); the next "
    "sync tries again."
)

__all__ = ["Progress", "execute_run"]


async def build_plan(
    graph: GraphClient,
    inputs: SyncInputs,
    progress: Progress,
    *,
    on_missing: Callable[[GraphNotFound], Awaitable[None]] | None = None,
) -> SyncPlan:
    """`on_missing` hears a 404 for the group before any member was listed, and raises if the group is gone."""
    planner = SyncPlanner(
        inputs.team,
        inputs.links,
        inputs.policy,
        inputs.dismissed,
        excluded=inputs.excluded,
        chosen=inputs.chosen,
    )
    progress.set_phase("listing", total=0)

    async def list_members() -> None:
        try:
            async for member in applying.list_group_members(graph, inputs.group_id):
                planner.observe(member)
                progress.advance(1)
        except GraphNotFound as error:
            if on_missing is not None and not progress.done:
                await on_missing(error)
            raise

    # A group created moments ago may not have replicated yet; one that is really gone stays 404, and a 404 once
    # members were listed is not replication lag.
    await while_replicating(list_members, REPLICATION_DELAYS, retry_if=lambda _: not progress.done)
    addresses = planner.addresses_to_resolve()
    progress.set_phase("resolving", total=len(addresses))
    resolved: dict[str, DirectoryUser] = await resolve_addresses(graph, addresses) if addresses else {}
    progress.advance(len(addresses))
    owners: set[str] = set()
    if planner.removal_candidates():
        owners = await applying.list_group_owner_ids(graph, inputs.group_id)
    return planner.finish(resolved, owners)


async def apply_plan(
    graph: GraphClient,
    inputs: SyncInputs,
    plan: SyncPlan,
    progress: Progress,
    recorder: Recorder,
    still_linked: Callable[[], Awaitable[bool]] | None = None,
) -> int:
    """Send the plan's writes a chunk at a time; every member gets one outcome and every change one audit event.
    Returns how many member changes failed because Graph stayed unavailable (worth a requeue). Before each chunk,
    `still_linked` is asked: once the group is unlinked, RunCancelled (stopping.py) carries what was left."""
    progress.set_phase("applying", total=len(plan.adds) + len(plan.removals))
    outages = 0
    pending_links = {link.user_id: link for link in plan.links}
    add_chunks, removal_chunks = chunks(plan.adds, ADD_CHUNK), chunks(plan.removals, ADD_CHUNK)

    async def stop_if_unlinked(adds_left: int, removals_left: int) -> None:
        if still_linked is not None and not await still_linked():
            left = [p for c in add_chunks[len(add_chunks) - adds_left :] for p in c]
            removals = [r for c in removal_chunks[len(removal_chunks) - removals_left :] for r in c]
            raise RunCancelled(cancelled_rows(left, removals))

    for index, chunk in enumerate(add_chunks):
        await stop_if_unlinked(len(add_chunks) - index, len(removal_chunks))
        applied = AppliedChanges()
        for planned in chunk:
            link = pending_links.pop(planned.user_id, None)
            if link is not None:
                applied.links[planned.user_id] = link
        outages += await _add_chunk(graph, inputs, chunk, applied, progress)
        await recorder.record(applied)

    for index, removal_chunk in enumerate(removal_chunks):
        await stop_if_unlinked(0, len(removal_chunks) - index)
        applied = AppliedChanges()
        removals = {r.directory_id: r for r in removal_chunk}
        for change in await applying.remove_members(graph, inputs.group_id, list(removals), progress.advance):
            note_removal(inputs, applied, removals[change.directory_id], change)
            outages += change.outage
        await recorder.record(applied)

    # Links that need no write (members already in the group, found under a new address), then the forgotten.
    rest = list(pending_links.values())
    for link_chunk in chunks(rest, ADD_CHUNK):
        await recorder.record(AppliedChanges(links={link.user_id: link for link in link_chunk}))
    if plan.forget_links:
        await recorder.record(AppliedChanges(forget_links=set(plan.forget_links)))
    return outages


class _StillMissing(GraphNotFound):
    """Some members of an add were unknown to Graph (MemberChange MISSING): maybe still replicating."""


async def _add_chunk(
    graph: GraphClient,
    inputs: SyncInputs,
    chunk: list[PlannedMember],
    applied: AppliedChanges,
    progress: Progress,
) -> int:
    """Add one chunk; members Graph does not know yet are looked up again and retried while_replicating.
    Returns how many adds failed because Graph stayed unavailable."""
    pending: list[PlannedMember] = list(chunk)
    missing: list[PlannedMember] = []
    outages = 0

    async def add_pending() -> None:
        nonlocal pending, missing, outages
        if missing:
            # The directory id may be gone (account deleted and re-created): look the addresses up again.
            pending = await _look_up_again(graph, missing, applied)
            if not pending:
                return
        by_id = {p.directory_id: p for p in pending}
        changes = await applying.add_members(graph, inputs.group_id, list(by_id), progress.advance)
        missing = []
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
                graph.own_writes.changed(
                    graph.tenant, inputs.group_id, planned.directory_id, present=True, member=listed
                )
            outages += change.outage
            note_add(inputs, applied, planned, change)
        if missing:
            raise _StillMissing(f"{len(missing)} member(s) not found by Microsoft Graph")

    try:
        await while_replicating(
            add_pending, REPLICATION_DELAYS, retry_if=lambda error: isinstance(error, _StillMissing)
        )
    except _StillMissing:
        for planned in missing:
            change = applying.MemberChange(planned.directory_id, Outcome.FAILED.value, STILL_REPLICATING)
            note_add(inputs, applied, planned, change)
    return outages


async def _look_up_again(
    graph: GraphClient, missing: list[PlannedMember], applied: AppliedChanges
) -> list[PlannedMember]:
    """The missing members under their directory ids as of now; those no user has any more are not in the tenant."""
    found = await resolve_addresses(graph, [p.email for p in missing])
    again: list[PlannedMember] = []
    for planned in missing:
        user = found.get(planned.email)
        if user is None:
            note_not_in_tenant(applied, planned)
            continue
        if user.id != planned.directory_id:
            applied.links[planned.user_id] = IdentityLink(
                user_id=planned.user_id,
                directory_id=user.id,
                matched_email=planned.email,
                matched_by=user.matched_by or "mail",
                added_by_sync=False,
            )
        again.append(
            PlannedMember(
                user_id=planned.user_id,
                email=planned.email,
                display_name=planned.display_name,
                directory_id=user.id,
            )
        )
    return again


async def execute_run(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    run_id: uuid.UUID,
    *,
    scope: GroupScope,
    progress: Progress | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    requeue: RequeuePolicy = NO_REQUEUES,
) -> str | None:
    """Claim and run one queued sync; returns its status once this try ends (None if another worker had claimed
    it): a final one, or `queued` when an outage queued it again (`requeue`; its retry_at says when)."""
    run = await claim_run(session_factory, run_id)
    if run is None:
        return None
    progress = progress or Progress()
    heartbeat = Heartbeat(session_factory, run_id, progress, lease_seconds)

    # Everything the run sends to Graph, from any of its tasks, and nothing another run sends.
    with measure_usage() as usage:
        heartbeat.start()
        status = RunStatus.FAILED.value
        started = time.monotonic()
        try:
            if run.trigger == PUSH_TRIGGER:
                status = await run_push(session_factory, graph, run, progress, usage, scope)
            elif run.trigger == DELTA_TRIGGER:
                status = await run_delta(session_factory, graph, run, progress, usage, scope)
            else:
                status = await _run(session_factory, graph, run, progress, usage, scope, requeue)
            return status
        except asyncio.CancelledError:
            if heartbeat.lost.is_set():
                log.warning("sync run %s was marked abandoned while running; stopped", run_id)
                status = RunStatus.ABANDONED.value
                return status
            await finish_failed(
                session_factory,
                run_id,
                "run_interrupted",
                "The sync was interrupted (the process is shutting down).",
                "Start the sync again; it picks up where this one stopped.",
                usage,
                earlier_stats=run.graph_stats,
            )
            raise
        except GraphError as error:
            if is_outage(error) and requeue.allows(run.requeues):
                log.warning("sync run %s met an outage, queued again: %r", run_id, error)
                status = await requeue_after_outage(
                    session_factory, run, requeue, usage, error, error.message
                )
                return status
            # Whatever its class, an error that reaches here fails the run (policy.py says which do).
            log.warning("sync run %s failed: %r", run_id, error)
            code, message, action = error.code or "graph_error", error.message, error.action
            if is_outage(error):
                code = outage_code(error)
                async with session_factory() as session:
                    kept = await kept_work(session, run_id)
                message = gave_up_message(error.message, kept=kept.changes, requeues=run.requeues)
                action = GAVE_UP_ACTION
            await finish_failed(
                session_factory, run_id, code, message, action, usage, earlier_stats=run.graph_stats
            )
            return RunStatus.FAILED.value
        except Exception:
            log.exception("sync run %s failed unexpectedly", run_id)
            await finish_failed(
                session_factory,
                run_id,
                "internal_error",
                "The sync stopped on an unexpected error.",
                "Try again; if it persists, contact support with the run id.",
                usage,
                earlier_stats=run.graph_stats,
            )
            return RunStatus.FAILED.value
        finally:
            await heartbeat.stop()
            outcome = "requeued" if status == RunStatus.QUEUED.value else status
            record_sync_run(outcome, time.monotonic() - started, progress.newly_flagged)


async def _run(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    run: SyncRun,
    progress: Progress,
    usage: GraphUsage,
    scope: GroupScope,
    requeue: RequeuePolicy,
) -> str:
    kept = KeptWork()
    async with session_factory() as session:
        inputs = await load_inputs(session, run)
        if run.requeues:
            # A try after a requeue: what the earlier tries did stays on the run, and counts.
            kept = await kept_work(session, run.id)
        linked = None if inputs is None else (inputs.organization_id, inputs.group_id)
        if await refused_at_start(session_factory, session, graph, scope, run.id, linked):
            return RunStatus.FAILED.value
    assert inputs is not None  # refused_at_start fails a run without inputs

    organization_id, group_id = inputs.organization_id, inputs.group_id

    async def on_missing(error: GraphNotFound) -> None:
        await raise_if_group_gone(session_factory, graph, organization_id, group_id, error)

    try:
        plan = await build_plan(graph, inputs, progress, on_missing=on_missing)
    except GroupMissing as missing:
        await finish_failed(
            session_factory,
            run.id,
            missing.code,
            missing.message,
            missing.action,
            usage,
            earlier_stats=run.graph_stats,
        )
        return RunStatus.FAILED.value
    # The plan holds what the next steps need; the team and the old links are no longer.
    inputs.team, inputs.links = [], []
    recorder = Recorder(session_factory, inputs, run.id, last_seq=kept.last_seq)
    outages = 0
    if inputs.dry_run:
        for rows in chunks(dry_run_rows(plan), ADD_CHUNK):
            await recorder.record(AppliedChanges(rows=rows), store_links=False)
    else:
        try:
            outages = await apply_plan(
                graph,
                inputs,
                plan,
                progress,
                recorder,
                still_linked=lambda: still_linked(session_factory, organization_id, group_id),
            )
        except RunCancelled as cancelled:
            return await finish_cancelled(session_factory, run, recorder, kept, usage, progress, cancelled)
    if outages and requeue.allows(run.requeues):
        # Some changes met an outage: the whole run is tried again later (only what is left is done then).
        reason = f"{outages} member change{'s' if outages != 1 else ''} could not be made: Microsoft Graph stayed unavailable."
        log.warning("sync run %s: %d member change(s) met an outage, queued again", run.id, outages)
        return await requeue_after_outage(session_factory, run, requeue, usage, None, reason)
    for rows in chunks(plan_rows(plan), ADD_CHUNK):
        await recorder.record(AppliedChanges(rows=rows), store_links=False)
    counts = dict(recorder.counts)
    for outcome, number in kept.counts.items():
        counts[outcome] = counts.get(outcome, 0) + number
    # Members an earlier try added are in the group now: counted once, as added.
    counts[Outcome.ALREADY_MEMBER.value] += sum(
        1 for member in plan.already_members if member.user_id not in kept.added_user_ids
    )
    counts["dismissedInGroup"] = plan.dismissed_in_group
    status = RunStatus.PARTIAL.value if counts[Outcome.FAILED.value] else RunStatus.SUCCEEDED.value

    progress.set_phase("recording")
    async with session_factory() as session:
        if not inputs.dry_run:
            progress.newly_flagged = await store_flags(session, inputs, plan)
        partial = status == RunStatus.PARTIAL.value
        finished = await finish_run(
            session,
            run.id,
            status=status,
            counts=counts,
            graph_stats=graph_stats_json(usage, run.graph_stats),
            done=progress.done,
            total=progress.total,
            error_code="some_members_failed" if partial else None,
            error_message=f"{counts[Outcome.FAILED.value]} member(s) could not be changed."
            if partial
            else None,
            error_action="Run the sync again: it retries only what is left." if partial else None,
        )
        # Even when the run was marked abandoned meanwhile, the changes it made in Microsoft 365 are real:
        # their links, flags and audit events are kept (links and audit events were written as they happened).
        await session.commit()
    return status if finished else RunStatus.ABANDONED.value
