"""A full reconcile owed by an expired deltaLink or a group watched again is asked for again until one succeeds:
it is the only thing that reads what changed while nobody watched the group, so a failed or abandoned run must not
leave those changes to the organization's next periodic reconcile, a day later."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from fleet_engine_support import FleetTenant, cycle_and_wait, link_teams, load_groups, runs_of

from equa.db.base import utcnow
from equa.microsoft.fleet.cycle import run_fleet_cycle
from equa.microsoft.models import RunStatus
from equa.microsoft.sync.runs import wait_for_run
from equa.microsoft.tasks import JobResources
from equa.organizations.models import Organization

pytestmark = pytest.mark.retry_budget("sync")

# Makes a gap in what the fleet watched for organization 0 and returns the stranger added by hand meanwhile.
Gap = Callable[[Any, Any, FleetTenant, list[uuid.UUID], JobResources], Awaitable[str]]


async def _delta_link_expired(
    emu: Any, session_factory: Any, tenant: FleetTenant, organizations: list[uuid.UUID], jobs: JobResources
) -> str:
    await cycle_and_wait(jobs)
    # Microsoft lost the round's sync state; the next cycle restarts it from now on.
    emu.expire_delta_tokens(emu.tenant_id, 410)
    stranger: str = tenant.users[-1]["id"]
    emu.add_members(tenant.groups[0], [stranger])
    return stranger


async def _auto_sync_back_on(
    emu: Any, session_factory: Any, tenant: FleetTenant, organizations: list[uuid.UUID], jobs: JobResources
) -> str:
    await cycle_and_wait(jobs)

    async def auto_sync(on: bool) -> None:
        async with session_factory() as session:
            organization = await session.get(Organization, organizations[0])
            organization.microsoft_auto_sync = on
            await session.commit()

    await auto_sync(False)
    assert (await cycle_and_wait(jobs)).run_ids == []
    stranger: str = tenant.users[-1]["id"]
    emu.add_members(tenant.groups[0], [stranger])  # while autoSync is off: no round sees it
    await auto_sync(True)
    return stranger


async def _linked_for_the_first_time(
    emu: Any, session_factory: Any, tenant: FleetTenant, organizations: list[uuid.UUID], jobs: JobResources
) -> str:
    stranger: str = tenant.users[-1]["id"]
    emu.add_members(tenant.groups[0], [stranger])  # in the group before it was ever read
    return stranger


@pytest.mark.parametrize(
    "gap",
    [_delta_link_expired, _auto_sync_back_on, _linked_for_the_first_time],
    ids=["delta-link-expired", "auto-sync-back-on", "linked-for-the-first-time"],
)
async def test_a_failed_owed_full_reconcile_is_asked_for_again_after_a_lease_until_one_succeeds(
    app: Any, emu: Any, session_factory: Any, gap: Gap
) -> None:
    tenant = load_groups(emu, 2)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    stranger = await gap(emu, session_factory, tenant, organizations, jobs)

    # The cycle that owes the full reconcile cannot hand it to the task queue (Redis unreachable): it fails.
    broker, jobs.broker = jobs.broker, None
    try:
        owing = await run_fleet_cycle(jobs)
        ended = [await wait_for_run(session_factory, run_id, 30) for run_id in owing.run_ids]
    finally:
        jobs.broker = broker
    failed = [r for r in ended if r is not None and r.organization_id == organizations[0]]
    assert [(r.trigger, r.status) for r in failed] == [("schedule", RunStatus.FAILED.value)]

    # Within a lease of the failure it is not asked for again: a lasting failure is not retried every tick.
    assert (await cycle_and_wait(jobs)).run_ids == []

    # Once a lease has passed it is, long before the organization's next periodic reconcile, and it flags the
    # stranger added by hand while nobody watched the group.
    lease = jobs.settings.sync_lease_seconds
    assert lease * 2 < jobs.settings.full_reconcile_interval_seconds
    healed = await cycle_and_wait(jobs, now=utcnow() + timedelta(seconds=lease + 1))
    (run,) = [
        r for r in await runs_of(session_factory, healed.run_ids) if r.organization_id == organizations[0]
    ]
    assert run.trigger == "schedule" and run.targets is None
    assert run.counts["flagged"] == 1
    assert stranger in emu.group_members(tenant.groups[0])

    # Paid once it succeeded: not asked for again.
    later = await cycle_and_wait(jobs, now=utcnow() + timedelta(seconds=2 * lease + 1))
    assert organizations[0] not in {r.organization_id for r in await runs_of(session_factory, later.run_ids)}


async def test_a_lasting_failure_backs_off_doubling_its_wait(
    app: Any, emu: Any, session_factory: Any
) -> None:
    """Each failure in a row doubles the wait before the next try (a lease, two, four...), so an organization
    whose runs keep failing is not retried once a lease for ever; a success ends the back-off."""
    tenant = load_groups(emu, 2)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    lease = jobs.settings.sync_lease_seconds
    assert lease * 8 < jobs.settings.full_reconcile_interval_seconds

    async def failing_cycle(**kwargs: Any) -> list[str]:
        """A cycle whose runs cannot reach the task queue: the trigger of each of organization 0's runs."""
        broker, jobs.broker = jobs.broker, None
        try:
            report = await run_fleet_cycle(jobs, **kwargs)
            ended = [await wait_for_run(session_factory, run_id, 30) for run_id in report.run_ids]
        finally:
            jobs.broker = broker
        mine = [r for r in ended if r is not None and r.organization_id == organizations[0]]
        assert all(r.status == RunStatus.FAILED.value for r in mine)
        return [r.trigger for r in mine]

    assert await failing_cycle() == ["schedule"]  # first failure: the next try a lease later
    assert await failing_cycle(now=utcnow() + timedelta(seconds=lease + 1)) == ["schedule"]
    # Second failure in a row: one lease is not enough now, two are.
    assert await failing_cycle(now=utcnow() + timedelta(seconds=lease + 1)) == []
    assert await failing_cycle(now=utcnow() + timedelta(seconds=2 * lease + 1)) == ["schedule"]
    # Third: four leases.
    assert await failing_cycle(now=utcnow() + timedelta(seconds=2 * lease + 1)) == []
    healed = await cycle_and_wait(jobs, now=utcnow() + timedelta(seconds=4 * lease + 1))
    assert organizations[0] in {r.organization_id for r in await runs_of(session_factory, healed.run_ids)}
    # Succeeded: nothing is owed, and a later failure starts again from one lease.
    later = await cycle_and_wait(jobs, now=utcnow() + timedelta(seconds=8 * lease + 1))
    assert organizations[0] not in {r.organization_id for r in await runs_of(session_factory, later.run_ids)}
