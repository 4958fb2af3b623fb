"""The scheduler (which organizations are due, jitter, the health check) and `equa sync` in a terminal."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sync_support import directory_user, load_tenant, make_team
from typer.testing import CliRunner

from equa.db.base import utcnow
from equa.microsoft.fleet.cycle import run_fleet_cycle
from equa.microsoft.models import RunStatus, SyncRun
from equa.microsoft.scheduler import run_scheduler
from equa.microsoft.sync.runs import wait_for_run
from equa.organizations.models import Organization

pytestmark = pytest.mark.retry_budget("sync")


async def _organization(session_factory: Any, group_id: str | None = None, **values: Any) -> uuid.UUID:
    org, _, _ = await make_team(session_factory, [], group_id=group_id or str(uuid.uuid4()), auto_sync=True)
    async with session_factory() as session:
        row = await session.get(Organization, org.id)
        for name, value in values.items():
            setattr(row, name, value)
        await session.commit()
    return org.id


def _new_group(emu: Any, name: str) -> str:
    return str(
        emu.add_group(displayName=name, mailNickname=name.lower().replace(" ", "-"), groupTypes=["Unified"])[
            "id"
        ]
    )


async def _finished_run(
    session_factory: Any,
    organization_id: uuid.UUID,
    age: timedelta,
    *,
    dry_run: bool,
    trigger: str = "schedule",
) -> None:
    async with session_factory() as session:
        organization = await session.get(Organization, organization_id)
        session.add(
            SyncRun(
                organization_id=organization_id,
                trigger=trigger,
                dry_run=dry_run,
                status=RunStatus.SUCCEEDED.value,
                group_id=str(organization.microsoft_group),
                counts={},
                graph_stats={},
                created_at=utcnow() - age,
                finished_at=utcnow() - age,
            )
        )
        await session.commit()


async def _age_runs(session_factory: Any, organization_id: uuid.UUID, age: timedelta) -> None:
    """As if the organization's runs so far had been made `age` ago."""
    async with session_factory() as session:
        for run in await session.scalars(select(SyncRun).where(SyncRun.organization_id == organization_id)):
            run.created_at = run.finished_at = utcnow() - age
        await session.commit()


async def _cycle_and_wait(jobs: Any, offset: float = 0) -> set[uuid.UUID]:
    """One fleet cycle (at now + `offset` seconds), each of its runs to a successful end; the organizations."""
    report = await run_fleet_cycle(jobs, now=utcnow() + timedelta(seconds=offset))
    organizations = set()
    for run_id in report.run_ids:
        run = await wait_for_run(jobs.session_factory, run_id, 30)
        assert run is not None and run.status == RunStatus.SUCCEEDED.value, run and run.error_message
        assert run.trigger == "schedule"
        organizations.add(run.organization_id)
    return organizations


async def _scheduled_runs(session_factory: Any, run_ids: list[uuid.UUID]) -> list[SyncRun]:
    async with session_factory() as session:
        return list(await session.scalars(select(SyncRun).where(SyncRun.id.in_(run_ids))))


async def test_only_autosync_organizations_whose_full_reconcile_is_due_are_scheduled(
    app: Any, emu: Any, session_factory: Any
) -> None:
    """The fleet cycle queues a full reconcile for each organization with autoSync on and a group linked that was
    never reconciled or whose last real full sync is older than EQUA_FULL_RECONCILE_INTERVAL; the others wait."""
    # The scheduled runs really run (embedded broker): give each a group that exists, so they finish at once.
    load_tenant(emu, [directory_user(0)])
    jobs = app.state.jobs
    interval = jobs.settings.full_reconcile_interval_seconds
    long_ago = timedelta(seconds=2 * interval)
    reconciled_long_ago = await _organization(session_factory, _new_group(emu, "Reconciled long ago"))
    reconciled_recently = await _organization(session_factory, _new_group(emu, "Reconciled recently"))
    only_dry_run_recently = await _organization(session_factory, _new_group(emu, "Only dry run recently"))
    only_targeted_recently = await _organization(session_factory, _new_group(emu, "Only targeted recently"))
    auto_sync_off = await _organization(
        session_factory, _new_group(emu, "Auto sync off"), microsoft_auto_sync=False
    )
    not_linked = await _organization(session_factory, microsoft_group=None, microsoft_group_linked_at=None)
    # A first cycle watches the groups and reconciles each of them; then their histories are set.
    first = await _cycle_and_wait(jobs)
    assert first == {reconciled_long_ago, reconciled_recently, only_dry_run_recently, only_targeted_recently}
    for organization_id in (reconciled_long_ago, only_dry_run_recently, only_targeted_recently):
        await _age_runs(session_factory, organization_id, long_ago)
    # A dry run changes nothing in Microsoft 365, so it does not postpone the real one; nor does a targeted run,
    # which reconciles a few people, not the whole group.
    await _finished_run(session_factory, only_dry_run_recently, timedelta(minutes=5), dry_run=True)
    await _finished_run(
        session_factory, only_targeted_recently, timedelta(minutes=5), dry_run=False, trigger="delta"
    )
    never_reconciled = await _organization(session_factory, _new_group(emu, "Never reconciled"))

    report = await run_fleet_cycle(app.state.jobs)
    runs = await _scheduled_runs(session_factory, report.run_ids)
    due = {never_reconciled, reconciled_long_ago, only_dry_run_recently, only_targeted_recently}
    assert {r.organization_id for r in runs} == due
    assert len(runs) == len(due) == report.full_reconciles
    assert {r.trigger for r in runs} == {"schedule"} and not any(r.dry_run for r in runs)
    for skipped in (auto_sync_off, not_linked, reconciled_recently):
        assert skipped not in {r.organization_id for r in runs}

    # The next cycles, while those runs are active and once they have ended, queue no second run for anyone.
    assert (await run_fleet_cycle(app.state.jobs)).run_ids == []
    for run_id in report.run_ids:
        finished = await wait_for_run(session_factory, run_id, 20)
        assert finished is not None and finished.status == RunStatus.SUCCEEDED.value
    assert (await run_fleet_cycle(app.state.jobs)).run_ids == []


async def test_each_organizations_full_reconcile_comes_after_the_interval_stretched_by_its_own_stable_jitter(
    app: Any, emu: Any, session_factory: Any
) -> None:
    """Organizations reconciled together do not all come due together: each one's interval is stretched by a
    stable 0-10 %, so their next full reconciles come over that tenth of the interval, each organization once."""
    load_tenant(emu, [directory_user(0)])
    jobs = app.state.jobs
    interval = jobs.settings.full_reconcile_interval_seconds
    # Fixed ids, so which organizations come first is the same every time the test runs.
    organizations: set[uuid.UUID] = set()
    async with session_factory() as session:
        for number in range(10):
            organization = Organization(
                id=uuid.uuid5(uuid.NAMESPACE_URL, f"sync-test/jitter/{number}"),
                name=f"Jitter {number}",
                microsoft_group=uuid.UUID(_new_group(emu, f"Jitter {number}")),
                microsoft_auto_sync=True,
            )
            session.add(organization)
            organizations.add(organization.id)
        await session.commit()
    # Watched and reconciled together, 1.05 intervals ago.
    assert await _cycle_and_wait(jobs) == organizations
    for organization_id in organizations:
        await _age_runs(session_factory, organization_id, timedelta(seconds=interval * 1.05))

    assert await _cycle_and_wait(jobs, -interval * 0.05 - 1) == set()  # nobody before the interval
    halfway = await _cycle_and_wait(jobs)  # 1.05 intervals
    assert halfway and halfway != organizations
    rest = await _cycle_and_wait(jobs, interval * 0.05 + 1)  # 1.1 intervals: every one is due, each once
    assert rest == organizations - halfway


async def test_a_scheduler_tick_runs_the_health_check_of_linked_groups(
    app: Any, emu: Any, session_factory: Any
) -> None:
    load_tenant(emu, [directory_user(0)])
    gone = await _organization(
        session_factory,
        microsoft_auto_sync=False,
        microsoft_group_linked_at=utcnow() - timedelta(days=2),
    )
    stop = asyncio.Event()
    scheduler = asyncio.create_task(run_scheduler(app.state.jobs, stop))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            async with session_factory() as session:
                organization = await session.get(Organization, gone)
                if organization.microsoft_group is None:
                    break
            await asyncio.sleep(0.1)
        assert organization.microsoft_group is None, "the health check did not clear the deleted group's link"
    finally:
        stop.set()
        await asyncio.wait_for(scheduler, timeout=10)


def test_equa_sync_in_the_foreground_prints_the_outcome_and_exits_by_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu: Any
) -> None:
    from equa.cli import app as cli

    users = [directory_user(i) for i in range(4)]
    tenant = load_tenant(emu, users, members=[users[3]["id"]])
    env = {
        "EQUA_DATA_DIR": str(tmp_path / "data"),
        "EQUA_SECRET_KEY": "cli-sync-key-" + "k" * 30,
        "MS_AUTH_ENABLED": "true",
        "MS_AUTH_CLIENT_ID": emu.client_id,
        "MS_AUTH_TENANT_ID": emu.tenant_id,
        "MS_AUTH_SECRET": emu.client_secret,
        "MS_AUTHORITY_HOST": emu.base_url,
        "MS_GRAPH_URL": emu.graph_url,
        "MS_CA_BUNDLE": str(emu.ca_path),
        "MS_GROUP_SCOPE": "tenant",  # the organization is linked to a seeded group directly, without a grant
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that Rich does not wrap an address
    for name in ("EQUA_DATABASE_URL", "EQUA_BROKER_URL", "EQUA_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def equa(*args: str) -> Any:
        return runner.invoke(cli, list(args))

    assert equa("db", "upgrade").exit_code == 0
    assert equa("users", "create", "admin@equa.example").exit_code == 0
    created = equa("orgs", "create", "Contoso team", "--admin", "admin@equa.example")
    org_id = created.stdout.strip()
    for user in users[:3]:
        assert equa("orgs", "add-member", org_id, user["mail"], "--role", "member").exit_code == 0
    asyncio.run(_link(tmp_path / "data", uuid.UUID(org_id), tenant.group_id))

    dry = equa("sync", org_id, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Dry run" in dry.stdout and "succeeded" in dry.stdout
    for user in users[:3]:
        assert user["mail"] in dry.stdout  # would be added
    assert emu.group_members(tenant.group_id) == [users[3]["id"]]

    real = equa("sync", org_id)
    assert real.exit_code == 0, real.output
    assert (
        "succeeded" in real.stdout and users[3]["mail"] in real.stdout
    )  # flagged: in the group, not the team
    assert set(emu.group_members(tenant.group_id)) == {u["id"] for u in users}

    emu.delete_group_behind_app(tenant.group_id)
    failed = equa("sync", org_id)
    assert failed.exit_code == 1
    assert "failed" in failed.stdout

    unknown = equa("sync", str(uuid.uuid4()))
    assert unknown.exit_code == 1 and "No organization has the id" in unknown.output


async def _link(data_dir: Path, organization_id: uuid.UUID, group_id: str) -> None:
    from equa.db.engine import create_engine_for, create_session_factory

    engine = create_engine_for(f"sqlite+aiosqlite:///{data_dir / 'equa.db'}")
    try:
        async with create_session_factory(engine)() as session:
            organization = await session.get(Organization, organization_id)
            assert organization is not None
            organization.microsoft_group = uuid.UUID(group_id)
            organization.microsoft_group_linked_at = utcnow()
            await session.commit()
    finally:
        await engine.dispose()
