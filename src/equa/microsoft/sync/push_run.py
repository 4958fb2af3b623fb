"""A targeted run (trigger `push`): a team change carried to the group for just the people it names.

The group is not listed. A named person who is on the team is looked up only when their link no longer fits their
address (one $batch of lookups for them all), then added with one POST members/$ref each, where "already a member"
counts as done. A named person who left the team (or was deactivated) is removed only with removeDeparted on, only
if the sync added them, never an owner (one read of the owners) and never someone another team member is linked to.
All the writes are packed in one $batch, so one team change costs at most two Graph requests: a lookup (or the
owners) and a write. Flags, and people the change does not name, are left to the next full sync.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.microsoft import repository
from equa.microsoft.graph import GraphClient, GraphUsage
from equa.microsoft.models import MatchedBy, Outcome, RunStatus, SyncRun
from equa.microsoft.scope import GroupScope
from equa.microsoft.sync import apply as applying
from equa.microsoft.sync.inputs import SyncInputs
from equa.microsoft.sync.lifecycle import finish_run, graph_stats_json
from equa.microsoft.sync.plan import IdentityLink, PlannedMember, PlannedRemoval, SyncPolicy, TeamMember
from equa.microsoft.sync.progress import Progress
from equa.microsoft.sync.recorder import AppliedChanges, OutcomeRow, Recorder, note_add, note_removal
from equa.microsoft.sync.resolve import resolve_addresses
from equa.microsoft.sync.stopping import refused_at_start

PUSH_TRIGGER = "push"
STILL_REPLICATING = (
    "Microsoft 365 does not find this user yet (a new account can take a while to replicate); the next sync tries "
    "again."
)


@dataclass
class PushInputs:
    """What a targeted run starts from: the named people still on the team, and the links that matter."""

    sync: SyncInputs  # team = the named people who are active members; links = their links
    departed: list[IdentityLink] = field(default_factory=list)  # links of named people who left the team
    claimed: set[str] = field(default_factory=set)  # directory ids linked to other active team members


@dataclass
class PushPlan:
    adds: list[PlannedMember] = field(default_factory=list)
    same_account: list[PlannedMember] = field(default_factory=list)  # in the group once one of the adds is
    links: dict[uuid.UUID, IdentityLink] = field(default_factory=dict)
    not_in_tenant: list[TeamMember] = field(default_factory=list)
    removals: list[PlannedRemoval] = field(default_factory=list)


def run_targets(run: SyncRun) -> set[uuid.UUID]:
    return {uuid.UUID(value) for value in run.targets or []}


def not_excluded(inputs: PushInputs, people: list[TeamMember]) -> list[TeamMember]:
    """The one place a push decides who may be added: people an admin removed from the group by hand stay out."""
    return [member for member in people if member.user_id not in inputs.sync.excluded]


async def load_push_inputs(session: AsyncSession, run: SyncRun) -> PushInputs | None:
    """The run's inputs; None when the organization is gone or no longer has a group linked."""
    organization = await repository.organization(session, run.organization_id)
    if organization is None or organization.microsoft_group is None:
        return None
    targets = run_targets(run)
    team = [
        TeamMember(user_id, email, name)
        for user_id, email, name in await repository.active_team(session, organization.id, only=targets)
    ]
    on_team = {member.user_id for member in team}
    links: list[IdentityLink] = []
    departed: list[IdentityLink] = []
    others: dict[str, uuid.UUID] = {}
    for row in await repository.directory_links(session, organization.id, str(organization.microsoft_group)):
        link = IdentityLink(
            row.user_id, row.directory_id, row.matched_email, row.matched_by, row.added_by_sync
        )
        if row.user_id in on_team:
            links.append(link)
        elif row.user_id in targets:
            departed.append(link)
        else:
            others[row.directory_id] = row.user_id
    claimed: set[str] = set()
    if departed and organization.microsoft_remove_departed:
        # Someone else on the team linked to the same directory user keeps them in the group.
        still_here = {user_id for user_id, _, _ in await repository.active_team(session, organization.id)}
        claimed = {directory_id for directory_id, user_id in others.items() if user_id in still_here}
    return PushInputs(
        SyncInputs(
            organization_id=organization.id,
            group_id=str(organization.microsoft_group),
            actor_id=None,
            dry_run=False,
            team=team,
            links=links,
            dismissed=set(),
            policy=SyncPolicy(remove_departed=organization.microsoft_remove_departed),
            excluded=await repository.excluded_user_ids(session, organization.id),
        ),
        departed,
        claimed,
    )


async def plan_push(graph: GraphClient, inputs: PushInputs) -> PushPlan:
    """Look up who needs it, and decide each named person's change."""
    plan = PushPlan()
    sync = inputs.sync
    known = {link.user_id: link for link in sync.links}
    people = not_excluded(inputs, sorted(sync.team, key=lambda m: m.email))
    unknown = [
        m.email for m in people if (link := known.get(m.user_id)) is None or link.matched_email != m.email
    ]
    found = await resolve_addresses(graph, unknown) if unknown else {}
    for member in people:
        old = known.get(member.user_id)
        if old is not None and old.matched_email == member.email:
            directory_id = old.directory_id
        else:
            user = found.get(member.email)
            if user is None:
                plan.not_in_tenant.append(member)
                continue
            directory_id = user.id
            plan.links[member.user_id] = IdentityLink(
                user_id=member.user_id,
                directory_id=directory_id,
                matched_email=member.email,
                matched_by=user.matched_by or MatchedBy.MAIL.value,
                added_by_sync=bool(old and old.directory_id == directory_id and old.added_by_sync),
            )
        planned = PlannedMember(member.user_id, member.email, member.display_name, directory_id)
        if any(p.directory_id == directory_id for p in plan.adds):
            plan.same_account.append(planned)  # two team members, one directory user: added once
        else:
            plan.adds.append(planned)

    if sync.policy.remove_departed:
        kept = inputs.claimed | {p.directory_id for p in plan.adds}
        candidates = [
            link for link in inputs.departed if link.added_by_sync and link.directory_id not in kept
        ]
        if candidates:
            owners = await applying.list_group_owner_ids(graph, sync.group_id)
            plan.removals = [
                PlannedRemoval(link.user_id, link.matched_email, link.directory_id)
                for link in candidates
                if link.directory_id not in owners
            ]
    return plan


async def apply_push(
    graph: GraphClient, inputs: SyncInputs, plan: PushPlan, progress: Progress
) -> AppliedChanges:
    """The writes of the plan, in one $batch each way; every named person gets an outcome."""
    applied = AppliedChanges(links=dict(plan.links))
    progress.set_phase("applying", total=len(plan.adds) + len(plan.removals))
    if plan.adds:
        known = {link.user_id: link for link in inputs.links}
        by_id = {p.directory_id: p for p in plan.adds}
        for planned in plan.adds:
            # Kept as it is (how it was matched, whether the sync added it) unless this run changes it.
            if planned.user_id not in applied.links and planned.user_id in known:
                applied.links[planned.user_id] = known[planned.user_id]
        for change in await applying.add_members_one_by_one(graph, inputs.group_id, list(by_id)):
            planned = by_id[change.directory_id]
            if change.outcome == applying.MISSING:
                change = applying.MemberChange(change.directory_id, Outcome.FAILED.value, STILL_REPLICATING)
            elif change.outcome == Outcome.ADDED.value:
                listed = {
                    "id": planned.directory_id,
                    "mail": planned.email,
                    "displayName": planned.display_name,
                }
                graph.own_writes.changed(
                    graph.tenant, inputs.group_id, planned.directory_id, present=True, member=listed
                )
            note_add(inputs, applied, planned, change)
        progress.advance(len(by_id))
        for planned in plan.same_account:
            note_add(
                inputs,
                applied,
                planned,
                applying.MemberChange(planned.directory_id, Outcome.ALREADY_MEMBER.value),
            )
    if plan.removals:
        removals = {r.directory_id: r for r in plan.removals}
        for change in await applying.remove_members(graph, inputs.group_id, list(removals), progress.advance):
            note_removal(inputs, applied, removals[change.directory_id], change)
    applied.rows += [
        OutcomeRow(
            outcome=Outcome.NOT_IN_TENANT.value,
            user_id=m.user_id,
            email=m.email,
            display_name=m.display_name,
            message=f"No directory user has the address {m.email}.",
        )
        for m in plan.not_in_tenant
    ]
    return applied


def matched_directory_ids(applied: AppliedChanges) -> set[str]:
    """Directory users this run found in the group, or put there, for people on the team."""
    in_group = (Outcome.ADDED.value, Outcome.ALREADY_MEMBER.value)
    return {row.directory_id for row in applied.rows if row.outcome in in_group and row.directory_id}


async def run_push(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    run: SyncRun,
    progress: Progress,
    usage: GraphUsage,
    scope: GroupScope,
) -> str:
    """The body of a targeted run (execute.py claims it, beats its heartbeat and fails it on a Graph error)."""
    async with session_factory() as session:
        inputs = await load_push_inputs(session, run)
        linked = None if inputs is None else (inputs.sync.organization_id, inputs.sync.group_id)
        if await refused_at_start(session_factory, session, graph, scope, run.id, linked):
            return RunStatus.FAILED.value
    assert inputs is not None  # refused_at_start fails a run without inputs

    progress.set_phase("resolving", total=len(inputs.sync.team))
    plan = await plan_push(graph, inputs)
    applied = await apply_push(graph, inputs.sync, plan, progress)
    recorder = Recorder(session_factory, inputs.sync, run.id)
    await recorder.record(applied)
    progress.set_phase("recording")
    async with session_factory() as session:
        status = await finish_targeted_run(session, run.id, inputs, recorder, applied, usage, progress)
        await session.commit()
    return status


async def finish_targeted_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    inputs: PushInputs,
    recorder: Recorder,
    applied: AppliedChanges,
    usage: GraphUsage,
    progress: Progress,
) -> str:
    """End a targeted run in the caller's last transaction; returns its status (`abandoned` if its lease was lost)."""
    counts = dict(recorder.counts)
    failed = counts[Outcome.FAILED.value]
    status = RunStatus.PARTIAL.value if failed else RunStatus.SUCCEEDED.value
    # Someone flagged as "in the group, not on the team" who has just joined is on the team now.
    await repository.clear_flags(session, inputs.sync.organization_id, matched_directory_ids(applied))
    finished = await finish_run(
        session,
        run_id,
        status=status,
        counts=counts,
        graph_stats=graph_stats_json(usage),
        done=progress.done,
        total=progress.total,
        error_code="some_members_failed" if failed else None,
        error_message=f"{failed} member(s) could not be changed." if failed else None,
        error_action="Run the sync again: it retries only what is left." if failed else None,
    )
    return status if finished else RunStatus.ABANDONED.value
