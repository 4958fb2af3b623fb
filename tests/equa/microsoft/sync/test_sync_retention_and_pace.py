"""Retention of run outcomes and audit events, and the pacing of the syncs an organization's admins ask for."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sync_support import directory_user, load_tenant, make_team

from equa.accounts.models import User
from equa.accounts.service import set_password
from equa.db.base import utcnow
from equa.microsoft.models import AuditEvent, RunStatus, SyncRun
from equa.microsoft.retention import prune
from equa.microsoft.scheduler import run_scheduler
from equa.microsoft.sync.runs import wait_for_run

pytestmark = pytest.mark.retry_budget("sync")

PASSWORD = "correct horse battery staple"


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def _sync(
    client: httpx.AsyncClient, org_id: Any, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post(url(org_id, "sync-members?wait=30"), json=body, headers=headers)


async def _outcome_emails(
    client: httpx.AsyncClient, org_id: Any, run_id: str, headers: dict[str, str]
) -> set[str]:
    response = await client.get(url(org_id, f"sync-runs/{run_id}/outcomes"), headers=headers)
    assert response.status_code == 200, response.text
    return {item["email"] for item in response.json()["items"]}


@pytest.mark.retry_budget("sync", sync_min_interval_seconds=30)
async def test_an_organization_may_ask_for_one_sync_or_dry_run_per_interval(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    tenant = load_tenant(emu, [directory_user(0)])
    org, admin, _ = await make_team(session_factory, [directory_user(0)["mail"]], group_id=tenant.group_id)
    headers = await bearer(admin)
    # A scheduled run a moment ago does not count: only what admins ask for is paced.
    async with session_factory() as session:
        session.add(
            SyncRun(
                organization_id=org.id,
                trigger="schedule",
                status=RunStatus.SUCCEEDED.value,
                group_id=tenant.group_id,
                counts={},
                graph_stats={},
                finished_at=utcnow(),
            )
        )
        await session.commit()

    first = await _sync(client, org.id, headers)
    assert first.status_code == 200, first.text

    for body in ({}, {"dryRun": True}):
        refused = await _sync(client, org.id, headers, **body)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        problem = refused.json()
        assert problem["code"] == "sync_too_soon"
        assert "30 s" in problem["detail"] and "Retry-After" in problem["action"]
    listed = (await client.get(url(org.id, "sync-runs"), headers=headers)).json()["items"]
    assert [r["trigger"] for r in listed] == ["api", "schedule"]


@pytest.mark.retry_budget("sync", sync_min_interval_seconds=30)
async def test_the_settings_page_shows_the_refusal_of_a_sync_asked_for_too_soon(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, sign_in: Any
) -> None:
    tenant = load_tenant(emu, [directory_user(0)])
    org, admin, _ = await make_team(session_factory, [directory_user(0)["mail"]], group_id=tenant.group_id)
    async with session_factory() as session:
        await set_password(session, await session.get(User, admin.id), PASSWORD)
        await session.commit()
    csrf = await sign_in(admin, PASSWORD)
    page_headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    sync_page = f"/organizations/{org.id}/settings/microsoft/sync"

    first = await client.post(sync_page, data={"dryRun": "true"}, headers=page_headers)
    assert first.status_code == 200 and "sync_too_soon" not in first.text
    async with session_factory() as session:
        (run,) = await session.scalars(select(SyncRun).where(SyncRun.organization_id == org.id))
    assert await wait_for_run(session_factory, run.id, 30) is not None
    refused = await client.post(sync_page, data={}, headers=page_headers)
    assert 'data-code="sync_too_soon"' in refused.text and "then start it again" in refused.text
    async with session_factory() as session:
        assert len(list(await session.scalars(select(SyncRun).where(SyncRun.organization_id == org.id)))) == 1


@pytest.mark.retry_budget("sync", sync_min_interval_seconds=30)
async def test_a_run_still_queued_or_running_is_answered_instead_of_429(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    emu.set_faults(latency_ms=400)  # the run takes a few seconds

    started = await client.post(url(org.id, "sync-members"), json={}, headers=headers)
    assert started.status_code == 202, started.text
    again = await client.post(url(org.id, "sync-members"), json={"dryRun": True}, headers=headers)
    assert again.status_code in (200, 202), again.text
    assert again.json()["id"] == started.json()["id"]


@pytest.mark.retry_budget("sync", sync_run_retention=2, audit_retention_days=30)
async def test_outcomes_past_the_newest_runs_and_old_audit_events_are_deleted_in_the_background(
    app: Any, client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    tenant = load_tenant(emu, [directory_user(0)])
    org, admin, _ = await make_team(session_factory, ["nobody@elsewhere.example"], group_id=tenant.group_id)
    headers = await bearer(admin)
    run_ids = []
    for _ in range(3):
        response = await _sync(client, org.id, headers)
        assert response.status_code == 200, response.text
        run_ids.append(response.json()["id"])
    for run_id in run_ids:
        assert "nobody@elsewhere.example" in await _outcome_emails(client, org.id, run_id, headers)
    async with session_factory() as session:
        for age, target in ((timedelta(days=40), "old.event"), (timedelta(days=2), "recent.event")):
            session.add(
                AuditEvent(
                    organization_id=org.id,
                    action="member.add",
                    target=target,
                    outcome="success",
                    created_at=utcnow() - age,
                )
            )
        await session.commit()

    stop = asyncio.Event()
    scheduler = asyncio.create_task(run_scheduler(app.state.jobs, stop))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not await _outcome_emails(client, org.id, run_ids[0], headers):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(scheduler, timeout=10)

    assert await _outcome_emails(client, org.id, run_ids[0], headers) == set()
    for run_id in run_ids[1:]:
        assert "nobody@elsewhere.example" in await _outcome_emails(client, org.id, run_id, headers)
    # The old run is still listed, with its counts.
    listed = (await client.get(url(org.id, "sync-runs"), headers=headers)).json()["items"]
    assert [r["id"] for r in listed] == run_ids[::-1]
    assert listed[-1]["counts"]["notInTenant"] == 2
    events = (await client.get(url(org.id, "audit"), headers=headers)).json()["items"]
    targets = {e["target"] for e in events}
    assert "recent.event" in targets and "old.event" not in targets


async def test_audit_events_are_kept_forever_by_default(
    emu: Any, session_factory: Any, settings: Any
) -> None:
    assert settings.audit_retention_days is None
    org, _, _ = await make_team(session_factory, [], group_id=str(uuid.uuid4()))
    async with session_factory() as session:
        session.add(
            AuditEvent(
                organization_id=org.id,
                action="group.link",
                target="ancient",
                outcome="success",
                created_at=utcnow() - timedelta(days=3650),
            )
        )
        await session.commit()
    pruned = await prune(
        session_factory, keep_runs=settings.sync_run_retention, audit_days=settings.audit_retention_days
    )
    assert pruned.audit_events == 0


async def test_each_organization_keeps_the_outcomes_of_its_own_newest_runs(
    session_factory: Any, settings: Any
) -> None:
    from equa.microsoft.models import SyncOutcome

    async def runs_with_outcomes(organization_id: uuid.UUID, count: int) -> list[uuid.UUID]:
        ids = []
        async with session_factory() as session:
            for age in range(count, 0, -1):
                run = SyncRun(
                    organization_id=organization_id,
                    trigger="schedule",
                    status=RunStatus.SUCCEEDED.value,
                    counts={},
                    graph_stats={},
                    created_at=utcnow() - timedelta(hours=age),
                )
                session.add(run)
                await session.flush()
                session.add(SyncOutcome(run_id=run.id, seq=1, outcome="added", email=f"p{age}@equa.example"))
                ids.append(run.id)
            await session.commit()
        return ids  # oldest first

    busy, _, _ = await make_team(session_factory, [], group_id=str(uuid.uuid4()))
    quiet, _, _ = await make_team(session_factory, [], group_id=str(uuid.uuid4()))
    busy_runs = await runs_with_outcomes(busy.id, 5)
    quiet_runs = await runs_with_outcomes(quiet.id, 2)

    pruned = await prune(session_factory, keep_runs=2, audit_days=None)
    assert (pruned.runs, pruned.outcomes) == (3, 3)
    async with session_factory() as session:
        kept = set(await session.scalars(select(SyncOutcome.run_id)))
        runs_left = set(await session.scalars(select(SyncRun.id)))
    assert kept == set(busy_runs[-2:]) | set(quiet_runs)
    assert runs_left == set(busy_runs) | set(quiet_runs)  # the runs themselves stay
    assert await prune(session_factory, keep_runs=2, audit_days=None) == type(pruned)()
