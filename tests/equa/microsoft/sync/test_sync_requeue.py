"""A Microsoft 365 outage longer than the Graph client's retries queues the run again (EQUA_SYNC_MAX_REQUEUES):
the run keeps what it did, says so while it waits, and ends as if the outage had not happened; only when the
outage outlasts every requeue does it fail, still keeping what it did."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sync_support import directory_user, load_tenant, make_team

from equa.accounts.models import User
from equa.microsoft.models import SyncRun
from equa.microsoft.sync.lifecycle import abandon_stale_runs
from equa.organizations.models import Organization

# The client gives up fast (two attempts, a second of waiting) so that an injected outage outlasts its retries.
FAST_GIVE_UP = {"graph_max_attempts": 2, "graph_max_retry_wait_seconds": 1.0}
FINAL = {"succeeded", "partial", "failed", "abandoned"}


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def start_sync(client: httpx.AsyncClient, org_id: Any, headers: dict[str, str]) -> str:
    response = await client.post(url(org_id, "sync-members"), json={}, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def read_run(
    client: httpx.AsyncClient, org_id: Any, run_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    response = await client.get(url(org_id, f"sync-runs/{run_id}"), headers=headers)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def wait_until(
    client: httpx.AsyncClient,
    org_id: Any,
    run_id: str,
    headers: dict[str, str],
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 60.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = await read_run(client, org_id, run_id, headers)
        if done(run):
            return run
        assert time.monotonic() < deadline, f"run {run_id} never got there: {run}"
        await asyncio.sleep(0.02)


def queued_again(run: dict[str, Any]) -> bool:
    assert run["status"] not in FINAL, f"the run ended instead of being queued again: {run}"
    return run["status"] == "queued" and run["requeues"] >= 1


async def all_outcomes(
    client: httpx.AsyncClient, org_id: Any, run_id: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    response = await client.get(
        url(org_id, f"sync-runs/{run_id}/outcomes"), params={"limit": 500}, headers=headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.mark.retry_budget("sync", **FAST_GIVE_UP, sync_requeue_backoff_seconds=1.5)
async def test_member_writes_that_outlast_the_clients_retries_queue_the_run_again_and_it_finishes_the_rest(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(25)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    # The adds go out as two PATCHes (20 + 5 members) in one $batch: the first fails on both of the client's
    # attempts, the second once only (so 5 people are added); the first's fallback, one POST $ref per member,
    # fails on both attempts too. Microsoft 365 then answers again.
    emu.set_batch_item_faults(
        {"method": "PATCH", "path": "/groups/", "status": 503, "times": 3},
        {"method": "POST", "path": "/groups/", "status": 503, "times": 40},
    )

    run_id = await start_sync(client, org.id, headers)
    waiting = await wait_until(client, org.id, run_id, headers, queued_again)
    # While it waits, the run says why, what it keeps and when it tries again.
    assert waiting["error"]["code"] == "microsoft_unavailable", waiting
    assert "already made in Microsoft 365" in waiting["error"]["message"], waiting
    assert "queued again" in waiting["error"]["message"], waiting
    assert waiting["error"]["action"], waiting
    assert waiting["retryAt"] is not None
    kept = waiting["counts"].get("added", 0)
    assert kept in (5, 20), waiting
    assert waiting["counts"].get("failed", 0) == 0, waiting

    run = await wait_until(client, org.id, run_id, headers, lambda r: r["status"] in FINAL)
    assert run["status"] == "succeeded", run
    assert run["requeues"] == 1 and run["error"] is None, run
    assert run["counts"]["added"] == 25 and run["counts"].get("failed", 0) == 0, run
    assert run["counts"]["alreadyMember"] == 0, run  # those the first try added are counted once, as added
    # One outcome per person, numbered in order across both tries.
    outcomes = await all_outcomes(client, org.id, run_id, headers)
    added = sorted(o["email"] for o in outcomes if o["outcome"] == "added")
    assert added == sorted(u["mail"] for u in users)
    assert [o["outcome"] for o in outcomes if o["outcome"] != "added"] == ["notInTenant"]  # the admin
    emu.replicate_now()
    assert set(emu.group_members(tenant.group_id)) == {u["id"] for u in users}


@pytest.mark.retry_budget("sync", **FAST_GIVE_UP, sync_requeue_backoff_seconds=1.5)
async def test_a_run_that_meets_an_outage_before_it_changed_anything_resumes_once_graph_answers(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(8)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    emu.set_faults(rate_503=1.0)  # every Graph request: listing the group's members fails first

    run_id = await start_sync(client, org.id, headers)
    waiting = await wait_until(client, org.id, run_id, headers, queued_again)
    assert waiting["error"]["code"] == "microsoft_unavailable", waiting
    assert "Nothing was changed in Microsoft 365 yet" in waiting["error"]["message"], waiting
    # Asking for a sync meanwhile returns the waiting run: never a second one.
    again = await client.post(url(org.id, "sync-members"), json={}, headers=headers)
    assert again.json()["id"] == run_id, again.text

    emu.set_faults()
    run = await wait_until(client, org.id, run_id, headers, lambda r: r["status"] in FINAL)
    assert run["status"] == "succeeded", run
    assert run["requeues"] >= 1 and run["counts"]["added"] == 8, run
    assert run["graphStats"]["requests"] > 0


@pytest.mark.retry_budget("sync", **FAST_GIVE_UP, sync_max_requeues=2, sync_requeue_backoff_seconds=0.1)
async def test_an_outage_that_outlasts_every_requeue_fails_the_run_saying_how_often_it_tried(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    emu.set_faults(rate_503=1.0)

    run_id = await start_sync(client, org.id, headers)
    run = await wait_until(client, org.id, run_id, headers, lambda r: r["status"] in FINAL)
    assert run["status"] == "failed", run
    assert run["requeues"] == 2, run
    assert run["error"]["code"] == "microsoft_unavailable", run
    assert "tried 3 times" in run["error"]["message"], run
    assert "EQUA_SYNC_MAX_REQUEUES" in run["error"]["action"], run
    assert emu.group_members(tenant.group_id) == []


@pytest.mark.retry_budget("sync", **FAST_GIVE_UP)
async def test_consent_missing_still_fails_the_run_at_once(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    emu.set_batch_item_faults({"method": "PATCH", "status": 403, "times": 10})

    run_id = await start_sync(client, org.id, headers)
    run = await wait_until(client, org.id, run_id, headers, lambda r: r["status"] in FINAL)
    assert run["status"] == "failed" and run["requeues"] == 0, run


LEASE = 60


async def test_a_run_queued_again_counts_its_lease_from_its_retry_time_not_its_creation(
    session_factory: async_sessionmaker[AsyncSession],
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    clock: Any,
) -> None:
    organization = await make_org(await make_user())
    async with session_factory() as session:
        run = SyncRun(
            organization_id=organization.id,
            trigger="api",
            created_at=clock.utcnow() - timedelta(seconds=10 * LEASE),  # it ran long before the outage
            requeues=1,
            retry_at=clock.utcnow() + timedelta(seconds=30),
        )
        session.add(run)
        await session.commit()
        run_id: uuid.UUID = run.id

    async def abandon() -> int:
        async with session_factory() as session:
            count = await abandon_stale_runs(
                session, organization.id, lease_seconds=LEASE, clock=clock.utcnow
            )
            await session.commit()
            return count

    clock.advance(30 + LEASE - 1)
    assert await abandon() == 0  # waiting for its turn, then a lease for a worker to take it
    clock.advance(2)
    assert await abandon() == 1
    async with session_factory() as session:
        stale = await session.get(SyncRun, run_id)
        assert stale is not None and stale.status == "abandoned"


@pytest.mark.retry_budget("sync", **FAST_GIVE_UP, sync_requeue_backoff_seconds=0.1)
async def test_a_user_lookup_batch_that_gives_up_on_503_queues_the_run_again_and_it_succeeds(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    """What failed whole runs before: one $batch of address lookups still answered 503 after the client's last
    attempt, and the run ended `failed`."""
    users = [directory_user(i) for i in range(5)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    # One $batch carries the three lookups (by mail, user principal name, proxy address): all fail on both attempts.
    emu.set_batch_item_faults({"method": "GET", "path": "/users", "status": 503, "times": 6})

    run_id = await start_sync(client, org.id, headers)
    run = await wait_until(client, org.id, run_id, headers, lambda r: r["status"] in FINAL)
    assert run["status"] == "succeeded", run
    assert run["requeues"] == 1 and run["counts"]["added"] == 5, run
    assert emu.batch_item_faults()["injected"] == 6
