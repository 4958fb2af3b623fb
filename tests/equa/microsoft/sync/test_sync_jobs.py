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
from equa.microsoft.models import RunStatus, SyncRun
from equa.microsoft.scheduler import SCHEDULE_JITTER, next_sync_due, run_scheduler, schedule_due_syncs
from equa.microsoft.sync.runs import wait_for_run
from equa.organizations.models import Organization

pytestmark = pytest.mark.retry_budget("sync")


INTERVAL = 3600


async def _organization(session_factory: Any, group_id: str | None = None, **values: Any) -> uuid.UUID:
    org, _, _ = await make_team(session_factory, [], group_id=group_id or str(uuid.uuid4()), auto_sync=True)
    async with session_factory() as session:
        row = await session.get(Organization, org.id)
        for name, value in values.items():
            setattr(row, name, value)
        await session.commit()
    return org.id


async def _finished_run(
    session_factory: Any, organization_id: uuid.UUID, age: timedelta, dry_run: bool
) -> None:
    async with session_factory() as session:
        organization = await session.get(Organization, organization_id)
        session.add(
            SyncRun(
                organization_id=organization_id,
                trigger="schedule",
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


async def test_only_autosync_organizations_whose_interval_has_passed_are_scheduled(
    emu: Any, session_factory: Any
) -> None:
    # The scheduled runs really run (embedded broker): give them a group that exists, so they finish at once.
    group_id = load_tenant(emu, [directory_user(0)]).group_id
    long_ago = utcnow() - timedelta(seconds=3 * INTERVAL)
    due_since_linking = await _organization(session_factory, group_id, microsoft_group_linked_at=long_ago)
    just_linked = await _organization(session_factory, microsoft_group_linked_at=utcnow())
    auto_sync_off = await _organization(
        session_factory, microsoft_auto_sync=False, microsoft_group_linked_at=long_ago
    )
    not_linked = await _organization(
        session_factory, microsoft_group=None, microsoft_group_linked_at=long_ago
    )
    synced_recently = await _organization(session_factory, microsoft_group_linked_at=long_ago)
    await _finished_run(session_factory, synced_recently, timedelta(minutes=5), dry_run=False)
    # A dry run changes nothing in Microsoft 365, so it does not postpone the real one.
    second_group = emu.add_group(
        displayName="Second team", mailNickname="second-team", groupTypes=["Unified"]
    )
    only_dry_run_recently = await _organization(
        session_factory, str(second_group["id"]), microsoft_group_linked_at=long_ago
    )
    await _finished_run(session_factory, only_dry_run_recently, timedelta(minutes=5), dry_run=True)

    async with session_factory() as session:
        run_ids = await schedule_due_syncs(session, INTERVAL)
        await session.commit()
    async with session_factory() as session:
        runs = list(await session.scalars(select(SyncRun).where(SyncRun.id.in_(run_ids))))
    assert {r.organization_id for r in runs} == {due_since_linking, only_dry_run_recently}
    assert {r.trigger for r in runs} == {"schedule"} and not any(r.dry_run for r in runs)
    for skipped in (just_linked, auto_sync_off, not_linked, synced_recently):
        assert skipped not in {r.organization_id for r in runs}

    # Asking again while those runs are active hands back the same runs, never a second one per organization.
    async with session_factory() as session:
        again = await schedule_due_syncs(session, INTERVAL)
        await session.commit()
    assert set(again) <= set(run_ids)
    for run_id in run_ids:
        finished = await wait_for_run(session_factory, run_id, 20)
        assert finished is not None and finished.status == RunStatus.SUCCEEDED.value


def test_each_organization_is_due_after_the_interval_stretched_by_its_own_stable_jitter() -> None:
    last = utcnow()
    stretches = []
    for _ in range(50):
        organization_id = uuid.uuid4()
        due = next_sync_due(organization_id, last, INTERVAL)
        assert due == next_sync_due(organization_id, last, INTERVAL)  # stable for one organization
        stretch = (due - last).total_seconds()
        assert INTERVAL <= stretch <= INTERVAL * (1 + SCHEDULE_JITTER)
        stretches.append(stretch)
    assert len({round(s) for s in stretches}) > 40  # organizations do not all fire at once
    never_synced = next_sync_due(uuid.uuid4(), None, INTERVAL)
    assert never_synced <= utcnow() - timedelta(seconds=INTERVAL * (1 - SCHEDULE_JITTER))


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
