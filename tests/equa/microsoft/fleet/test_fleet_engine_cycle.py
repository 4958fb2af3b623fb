"""The fleet cycle: an idle cycle costs one delta request per 50 groups; full reconciles come when due or expired."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fleet_engine_support import cycle_and_wait, delta_requests, link_teams, load_groups, runs_of

from equa.db.base import utcnow
from equa.organizations.models import Organization

pytestmark = pytest.mark.retry_budget("sync")

GROUPS = 52  # two rounds: 50 groups and 2


async def test_an_idle_cycle_costs_one_delta_request_per_50_groups_and_queues_no_run(
    app: Any, emu: Any, session_factory: Any
) -> None:
    tenant = load_groups(emu, GROUPS)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    rounds = math.ceil(GROUPS / 50)

    # First cycle: a deltaLink per round from now on ($deltatoken=latest, no data), and each group's full sync.
    first = await cycle_and_wait(jobs)
    assert first.delta_requests == rounds == delta_requests(emu)
    assert first.full_reconciles == GROUPS and first.targeted_runs == 0
    assert {r.trigger for r in await runs_of(session_factory, first.run_ids)} == {"schedule"}
    assert set(emu.group_members(tenant.groups[7])) == {tenant.users[14]["id"], tenant.users[15]["id"]}

    # The next cycles see only the sync's own additions (already known) or nothing: no run, one request a round.
    for _ in range(2):
        emu.reset_stats()
        idle = await cycle_and_wait(jobs)
        assert idle.delta_requests == rounds == delta_requests(emu) == emu.stats()["graph_requests"]
        assert idle.run_ids == [] and idle.tenants == 1
    assert len(organizations) == GROUPS


async def test_each_group_gets_a_full_reconcile_once_the_interval_has_passed(
    app: Any, emu: Any, session_factory: Any
) -> None:
    tenant = load_groups(emu, 3)
    await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    interval = jobs.settings.full_reconcile_interval_seconds

    not_yet = await cycle_and_wait(jobs, now=utcnow() + timedelta(seconds=interval * 0.9))
    assert not_yet.full_reconciles == 0 and not_yet.run_ids == []
    # Each organization's interval is stretched by at most 10 %, so after 1.1 intervals every one is due.
    due = await cycle_and_wait(jobs, now=utcnow() + timedelta(seconds=interval * 1.1 + 1))
    assert due.full_reconciles == 3 and due.targeted_runs == 0
    runs = await runs_of(session_factory, due.run_ids)
    assert {r.trigger for r in runs} == {"schedule"} and all(r.targets is None for r in runs)
    assert all(r.counts["alreadyMember"] == 2 for r in runs)


@pytest.mark.parametrize("status", [400, 410])
async def test_an_expired_delta_link_falls_back_to_a_full_reconcile_and_a_new_round(
    app: Any, emu: Any, session_factory: Any, status: int
) -> None:
    tenant = load_groups(emu, 3)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    # Microsoft lost the round's sync state; meanwhile someone added a stranger to group 1 by hand.
    emu.expire_delta_tokens(emu.tenant_id, status)
    emu.add_members(tenant.groups[1], [tenant.users[-1]["id"]])

    emu.reset_stats()
    expired = await cycle_and_wait(jobs)
    assert expired.expired_groups == 3 and expired.full_reconciles == 3
    # The expired answer, and a new round from now on.
    assert delta_requests(emu) == 2 and emu.delta_tokens()["expired_answers"] >= 1
    runs = await runs_of(session_factory, expired.run_ids)
    assert {r.organization_id for r in runs} == set(organizations)
    assert {r.trigger for r in runs} == {"schedule"}
    # The full reconcile saw the stranger in group 1 and flagged them.
    flagged = {r.organization_id: r.counts["flagged"] for r in runs}
    assert flagged[organizations[1]] == 1 and flagged[organizations[0]] == 0

    emu.reset_stats()
    idle = await cycle_and_wait(jobs)
    assert idle.run_ids == [] and delta_requests(emu) == 1


async def test_a_group_watched_again_after_autosync_was_off_is_reconciled_at_once(
    app: Any, emu: Any, session_factory: Any
) -> None:
    """While autoSync is off nobody watches the group; turned back on, its new round starts from now, so the next
    cycle reconciles the group in full instead of leaving what changed meanwhile to the next interval."""
    tenant = load_groups(emu, 2)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)

    async def auto_sync(on: bool) -> None:
        async with session_factory() as session:
            organization = await session.get(Organization, organizations[0])
            organization.microsoft_auto_sync = on
            await session.commit()

    await auto_sync(False)
    assert (await cycle_and_wait(jobs)).run_ids == []
    stranger = tenant.users[-1]["id"]
    emu.add_members(tenant.groups[0], [stranger])  # by hand in Microsoft 365, while autoSync is off
    assert (await cycle_and_wait(jobs)).run_ids == []

    await auto_sync(True)
    back = await cycle_and_wait(jobs)
    (run,) = await runs_of(session_factory, back.run_ids)
    assert back.full_reconciles == 1 and run.organization_id == organizations[0]
    assert run.trigger == "schedule" and run.counts["flagged"] == 1
    assert (await cycle_and_wait(jobs)).run_ids == []  # once


async def test_another_group_linked_to_a_reconciled_organization_is_reconciled_at_once(
    app: Any, emu: Any, session_factory: Any
) -> None:
    """The organization's last full reconcile was of its former group: the group it links now is read in full by
    the next cycle, not after the organization's interval."""
    tenant = load_groups(emu, 2)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    stranger = tenant.users[-1]["id"]
    other = emu.add_group(
        displayName="Other team", mailNickname="other-team", groupTypes=["Unified"], members=[stranger]
    )
    async with session_factory() as session:
        organization = await session.get(Organization, organizations[0])
        organization.microsoft_group = uuid.UUID(other["id"])
        await session.commit()

    relinked = await cycle_and_wait(jobs)
    (run,) = await runs_of(session_factory, relinked.run_ids)
    assert relinked.full_reconciles == 1 and run.organization_id == organizations[0]
    assert run.group_id == other["id"] and run.counts["flagged"] == 1 and run.counts["added"] == 2
    assert (await cycle_and_wait(jobs)).run_ids == []
