"""A team change is written to the outbox with the change itself: if the process that saw it stops before pushing
it, the next fleet cycle carries it, in one targeted run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fleet_engine_support import cycle_and_wait, link_teams, load_groups, runs_of
from sqlalchemy import select

from equa.accounts.models import User, normalize_email
from equa.app import create_app
from equa.microsoft.fleet.cycle import run_fleet_cycle
from equa.microsoft.fleet.models import PendingChange
from equa.microsoft.sync.runs import wait_for_run
from equa.organizations.models import Membership, Role

pytestmark = pytest.mark.retry_budget("sync")


async def test_a_team_change_left_unpushed_by_a_stopped_process_is_carried_by_the_next_cycle(
    app: Any, emu: Any, session_factory: Any, settings: Any
) -> None:
    tenant = load_groups(emu, 2)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    joiner = tenant.users[-1]

    # Another API process sees the change and stops before its push window has passed.
    other = create_app(settings)
    async with LifespanManager(other), other.state.session_factory() as session:
        user = User(
            email=joiner["mail"], email_normalized=normalize_email(joiner["mail"]), display_name="Joiner"
        )
        session.add(user)
        await session.flush()
        session.add(Membership(organization_id=organizations[1], user_id=user.id, role=Role.MEMBER))
        await session.commit()
    assert joiner["id"] not in emu.group_members(tenant.groups[1])
    async with session_factory() as session:
        pending = list(await session.scalars(select(PendingChange)))
    assert [(p.organization_id, p.user_id, p.kind) for p in pending] == [(organizations[1], user.id, "team")]

    report = await cycle_and_wait(jobs)
    assert report.targeted_runs == 1 and report.full_reconciles == 0
    (run,) = await runs_of(session_factory, report.run_ids)
    assert run.organization_id == organizations[1] and run.trigger == "delta"
    assert run.targets == [str(user.id)] and run.counts["added"] == 1
    assert joiner["id"] in emu.group_members(tenant.groups[1])
    async with session_factory() as session:
        assert list(await session.scalars(select(PendingChange))) == []
    # Carried once: the next cycle sees only the run's own addition, which is no difference.
    assert (await cycle_and_wait(jobs)).run_ids == []


async def test_a_pushed_team_change_leaves_nothing_for_the_cycle(
    app: Any, emu: Any, session_factory: Any
) -> None:
    tenant = load_groups(emu, 1)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    leaver = tenant.users[0]
    joiner = tenant.users[-1]
    async with session_factory() as session:
        user = User(
            email=joiner["mail"], email_normalized=normalize_email(joiner["mail"]), display_name="Joiner"
        )
        session.add(user)
        await session.flush()
        session.add(Membership(organization_id=organizations[0], user_id=user.id, role=Role.MEMBER))
        await session.commit()
    # The API process pushes it (after its one-second window); its run carries the outbox's copy.
    for _ in range(100):
        if joiner["id"] in emu.group_members(tenant.groups[0]):
            break
        await asyncio.sleep(0.1)
    assert joiner["id"] in emu.group_members(tenant.groups[0])
    async with session_factory() as session:
        assert list(await session.scalars(select(PendingChange))) == []
    assert leaver["id"] in emu.group_members(tenant.groups[0])


async def test_the_changes_of_a_run_that_failed_wait_for_the_next_run(
    app: Any, emu: Any, session_factory: Any, settings: Any
) -> None:
    from datetime import timedelta

    from equa.db.base import utcnow
    from graph_emulator import seeds

    tenant = load_groups(emu, 1)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    joiner = tenant.users[-1]
    other = create_app(settings)  # a process that stops before pushing, as above
    async with LifespanManager(other), other.state.session_factory() as session:
        user = User(
            email=joiner["mail"], email_normalized=normalize_email(joiner["mail"]), display_name="Joiner"
        )
        session.add(user)
        await session.flush()
        session.add(Membership(organization_id=organizations[0], user_id=user.id, role=Role.MEMBER))
        await session.commit()

    # The app may no longer read users: the run that carries the change cannot look the joiner up, and fails.
    emu.set_app_roles(emu.client_id, [r for r in seeds.APP_ROLES if r != "User.Read.All"])
    emu.revoke_tokens()  # tokens issued before carry the old roles
    failing = await run_fleet_cycle(jobs)
    (failed,) = [await wait_for_run(session_factory, r, 30) for r in failing.run_ids]
    assert failed is not None and failed.status == "failed" and failed.trigger == "delta"
    # Right after the failure the change waits (a lasting failure is retried once a lease, not every tick)...
    assert (await run_fleet_cycle(jobs)).run_ids == []
    async with session_factory() as session:
        assert [p.user_id for p in await session.scalars(select(PendingChange))] == [user.id]

    # ... and once the cause is gone, the next run carries it.
    emu.set_app_roles(emu.client_id, list(seeds.APP_ROLES))
    emu.revoke_tokens()
    later = utcnow() + timedelta(seconds=jobs.settings.sync_lease_seconds + 1)
    report = await cycle_and_wait(jobs, now=later)
    (run,) = await runs_of(session_factory, report.run_ids)
    assert run.trigger == "delta" and run.counts["added"] == 1
    assert joiner["id"] in emu.group_members(tenant.groups[0])
    async with session_factory() as session:
        assert list(await session.scalars(select(PendingChange))) == []
