"""Runs against a vanished or unlinked group: a deleted group fails the run with microsoft_group_missing and clears
the link (the rule every read follows); unlinking during a run stops it before its next write, what is left is
`cancelled`, and so is the run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sync_support import directory_user, load_tenant, make_team

from equa.accounts.models import User, normalize_email
from equa.db.base import utcnow
from equa.microsoft.models import AuditEvent
from equa.organizations.models import Membership, Organization, Role

pytestmark = pytest.mark.retry_budget("sync")
FINAL = {"succeeded", "partial", "failed", "abandoned", "cancelled"}


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def finished(
    client: httpx.AsyncClient, org_id: Any, run_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        run: dict[str, Any] = (await client.get(url(org_id, f"sync-runs/{run_id}"), headers=headers)).json()
        if run["status"] in FINAL:
            return run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.05)


async def test_a_run_on_a_group_deleted_right_after_linking_fails_as_missing_and_clears_the_link(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(4)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    async with session_factory() as session:
        linked = await session.get(Organization, org.id)
        assert linked is not None
        linked.microsoft_group_linked_at = utcnow()  # linked moments ago: inside the replication window
        await session.commit()
    headers = await bearer(admin)
    emu.delete_group_behind_app(tenant.group_id)

    response = await client.post(url(org.id, "sync-members?wait=30"), json={}, headers=headers)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "failed", run
    assert run["error"]["code"] == "microsoft_group_missing", run
    assert "Restore it" in run["error"]["action"], run
    status = (await client.get(url(org.id, "status"), headers=headers)).json()
    assert status["linked"] is False
    async with session_factory() as session:
        events = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "group.missing")))
    assert [e.target for e in events] == [tenant.group_id]


async def test_unlinking_during_a_run_stops_it_before_its_next_write_and_cancels_the_rest(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(8)]
    tenant = load_tenant(emu, users)
    org, admin, team = await make_team(
        session_factory, [u["mail"] for u in users[:5]], group_id=tenant.group_id, remove_departed=True
    )
    headers = await bearer(admin)
    first = await client.post(url(org.id, "sync-members?wait=30"), json={}, headers=headers)
    assert first.json()["status"] == "succeeded", first.text
    emu.replicate_now()

    # Three people leave the team and three join: the next run adds three, then removes three.
    departed = team[:3]
    async with session_factory() as session:
        await session.execute(
            delete(Membership).where(
                Membership.organization_id == org.id, Membership.user_id.in_([u.id for u in departed])
            )
        )
        await session.commit()
    async with session_factory() as session:
        for user in users[5:]:
            joined = User(
                email=user["mail"], email_normalized=normalize_email(user["mail"]), display_name="New"
            )
            session.add(joined)
            await session.flush()
            session.add(Membership(organization_id=org.id, user_id=joined.id, role=Role.MEMBER))
        await session.commit()

    # The adds are throttled twice (Graph asks for a second each time): the admin unlinks meanwhile.
    emu.set_batch_item_faults({"method": "PATCH", "status": 429, "times": 2})
    started = await client.post(url(org.id, "sync-members"), json={}, headers=headers)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    deadline = time.monotonic() + 30
    while emu.batch_item_faults()["injected"] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    unlinked = await client.delete(url(org.id, "unlink-group"), headers=headers)
    assert unlinked.status_code == 204, unlinked.text

    run = await finished(client, org.id, run_id, headers)
    assert run["status"] == "cancelled", run
    assert run["error"]["code"] == "group_unlinked", run
    assert run["counts"]["added"] == 3 and run["counts"]["cancelled"] == 3, run
    outcomes = (
        await client.get(
            url(org.id, f"sync-runs/{run_id}/outcomes"), params={"outcome": "cancelled"}, headers=headers
        )
    ).json()["items"]
    assert sorted(o["email"] for o in outcomes) == sorted(u.email for u in departed)
    emu.replicate_now()
    # The removals were never sent: the departed are still in the group the admin let go of.
    assert {u["id"] for u in users[:3]} <= set(emu.group_members(tenant.group_id))
