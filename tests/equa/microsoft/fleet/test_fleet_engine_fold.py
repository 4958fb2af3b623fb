"""Changes made by hand in Microsoft 365 are folded: only the organizations concerned get a run, a targeted one,
and it concludes what the admin meant (issue 14): a removed team member is excluded, a stranger is flagged, a team
member added by hand is linked."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fleet_engine_support import cycle_and_wait, delta_requests, link_teams, load_groups, runs_of
from sqlalchemy import select

from equa.accounts.models import User, normalize_email
from equa.db.base import utcnow
from equa.microsoft.models import AuditEvent, FlaggedMember, MicrosoftExclusion, MicrosoftMember
from equa.organizations.models import Membership, Role

pytestmark = pytest.mark.retry_budget("sync")


async def test_hand_changes_in_microsoft_365_get_one_targeted_run_per_organization_concerned(
    app: Any, emu: Any, session_factory: Any
) -> None:
    tenant = load_groups(emu, 5)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    graph = jobs.graph
    users = tenant.users

    # Organization 0: an admin removes a linked team member from the group in Entra.
    await graph.delete(f"groups/{tenant.groups[0]}/members/{users[0]['id']}/$ref")
    # Organization 1: someone not on the team is added to the group.
    stranger = users[-1]
    emu.add_members(tenant.groups[1], [stranger["id"]])
    # Organization 2: a newcomer joined the team without a push (written straight to the database), then an
    # admin added their account to the group by hand.
    newcomer = users[-2]
    async with session_factory.kw["bind"].connect() as connection:
        user_id = uuid.uuid4()
        await connection.execute(
            User.__table__.insert().values(
                id=user_id,
                email=newcomer["mail"],
                email_normalized=normalize_email(newcomer["mail"]),
                display_name="Newcomer",
                is_active=True,
            )
        )
        await connection.execute(
            Membership.__table__.insert().values(
                id=uuid.uuid4(), organization_id=organizations[2], user_id=user_id, role=Role.MEMBER.value
            )
        )
        await connection.commit()
    emu.add_members(tenant.groups[2], [newcomer["id"]])
    # Organizations 3 and 4: nothing. (The client's memory of its own recent writes is for replication lag,
    # which these hand changes are not subject to.)
    graph.own_writes.clear()

    emu.reset_stats()
    report = await cycle_and_wait(jobs)
    assert report.full_reconciles == 0 and report.targeted_runs == 3
    runs = {r.organization_id: r for r in await runs_of(session_factory, report.run_ids)}
    assert set(runs) == set(organizations[:3])
    assert {r.trigger for r in runs.values()} == {"delta"} and all(r.targets == [] for r in runs.values())
    # One delta request, then one lookup of the unknown accounts per organization that has some; no listing.
    assert delta_requests(emu) == 1
    assert emu.stats()["graph_requests"] == 3
    assert runs[organizations[0]].counts["excluded"] == 1
    assert runs[organizations[1]].counts["flagged"] == 1
    assert runs[organizations[2]].counts["alreadyMember"] == 1

    async with session_factory() as session:
        exclusions = list(await session.scalars(select(MicrosoftExclusion)))
        flags = list(await session.scalars(select(FlaggedMember)))
        link = await session.scalar(select(MicrosoftMember).where(MicrosoftMember.user_id == user_id))
        audit = list(
            await session.scalars(select(AuditEvent).where(AuditEvent.organization_id == organizations[0]))
        )
    assert [(e.organization_id, e.excluded_by) for e in exclusions] == [(organizations[0], None)]
    assert [(f.organization_id, f.directory_id, f.email) for f in flags] == [
        (organizations[1], stranger["id"], stranger["mail"])
    ]
    assert link is not None and link.directory_id == newcomer["id"] and link.matched_by == "mail"
    assert link.added_by_sync is False
    assert [e.action for e in audit if e.action == "member.exclude"] == ["member.exclude"]

    # What was folded is known now: the next cycle is idle, and a full reconcile keeps the member out.
    idle = await cycle_and_wait(jobs)
    assert idle.run_ids == []
    interval = jobs.settings.full_reconcile_interval_seconds
    full = await cycle_and_wait(jobs, now=utcnow() + timedelta(seconds=interval * 1.1 + 1))
    reconciled = {r.organization_id: r for r in await runs_of(session_factory, full.run_ids)}
    assert reconciled[organizations[0]].counts["excluded"] == 1, reconciled[organizations[0]].counts
    assert reconciled[organizations[0]].counts["added"] == 0
    assert users[0]["id"] not in emu.group_members(tenant.groups[0])
    assert reconciled[organizations[2]].counts["alreadyMember"] == 3  # the newcomer too


async def test_a_member_added_back_by_hand_in_microsoft_365_is_no_longer_excluded(
    app: Any, emu: Any, session_factory: Any
) -> None:
    tenant = load_groups(emu, 1)
    (organization,) = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    member = tenant.users[1]["id"]
    await jobs.graph.delete(f"groups/{tenant.groups[0]}/members/{member}/$ref")
    jobs.graph.own_writes.clear()
    removed = await cycle_and_wait(jobs)
    assert removed.targeted_runs == 1
    emu.add_members(tenant.groups[0], [member])
    added = await cycle_and_wait(jobs)
    (run,) = await runs_of(session_factory, added.run_ids)
    assert run.trigger == "delta" and run.counts["alreadyMember"] == 1 and run.counts["excluded"] == 0
    async with session_factory() as session:
        assert list(await session.scalars(select(MicrosoftExclusion))) == []
        actions = [
            e.action
            for e in await session.scalars(
                select(AuditEvent).where(AuditEvent.organization_id == organization)
            )
        ]
    assert actions.count("member.exclude") == 1 and actions.count("member.allow") == 1
    assert (await cycle_and_wait(jobs)).run_ids == []
