"""Sync through the API against the emulator: adds, flags, not-in-tenant, dry run, re-sync, runs and outcomes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sync_support import directory_user, load_tenant, make_team

from equa.microsoft.models import AuditEvent, FlaggedMember, MicrosoftMember, SyncRun

pytestmark = pytest.mark.retry_budget("sync")


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def sync(
    client: httpx.AsyncClient, org_id: Any, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post(url(org_id, "sync-members?wait=30"), json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["location"].endswith(f"/sync-runs/{response.json()['id']}")
    result: dict[str, Any] = response.json()
    return result


async def outcomes(
    client: httpx.AsyncClient, org_id: Any, run_id: str, headers: dict[str, str]
) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    cursor = None
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            url(org_id, f"sync-runs/{run_id}/outcomes"), params=params, headers=headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        for item in page["items"]:
            found.setdefault(item["outcome"], set()).add(item["email"])
        cursor = page["nextCursor"]
        if not cursor:
            return found


async def test_first_sync_adds_resolvable_members_flags_strangers_and_reports_the_rest(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(30)]
    # person0-4 are already in the group; person25-29 are in the group but not on the team.
    tenant = load_tenant(
        emu, users, members=[u["id"] for u in users[:5] + users[25:]], owners=[users[0]["id"]]
    )
    team_emails = [u["mail"] for u in users[:25]] + ["nobody@elsewhere.example"]
    # One address differs in case only, one is known to Microsoft 365 only as a proxy address.
    team_emails[7] = team_emails[7].upper()
    emu.add_user(
        **{
            **directory_user(99, prefix="alias"),
            "proxyAddresses": ["SMTP:alias99@contoso.onmicrosoft.com", "smtp:second.name@equa.example"],
        }
    )
    team_emails.append("second.name@equa.example")
    org, admin, _ = await make_team(session_factory, team_emails, group_id=tenant.group_id)
    headers = await bearer(admin)

    run = await sync(client, org.id, headers)
    assert run["status"] == "succeeded", run
    assert run["counts"]["added"] == 21  # person5-24 and the proxy-address user
    assert run["counts"]["alreadyMember"] == 5
    assert run["counts"]["flagged"] == 5
    assert run["counts"]["notInTenant"] == 2  # nobody@elsewhere and the admin's own address
    members = set(emu.group_members(tenant.group_id))
    assert {u["id"] for u in users[:30]} <= members

    found = await outcomes(client, org.id, run["id"], headers)
    assert "nobody@elsewhere.example" in found["notInTenant"]
    assert found["flagged"] == {u["mail"] for u in users[25:]}
    assert "second.name@equa.example" in found["added"]

    flags = (await client.get(url(org.id, "flagged-members?status=pending"), headers=headers)).json()["items"]
    assert {f["email"] for f in flags} == {u["mail"] for u in users[25:]}

    async with session_factory() as session:
        links = await session.scalar(
            select(func.count()).select_from(MicrosoftMember).where(MicrosoftMember.organization_id == org.id)
        )
        adds = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.organization_id == org.id, AuditEvent.action == "member.add")
        )
    assert links == 26 and adds == 21

    # Nothing changed: the re-sync only lists the group (one page) and writes nothing.
    emu.reset_stats()
    again = await sync(client, org.id, headers)
    assert again["status"] == "succeeded"
    assert again["counts"]["added"] == 0 and again["counts"]["alreadyMember"] == 26
    stats = emu.stats()
    assert stats["writes"] == 0
    assert stats["graph_requests"] <= 2, stats  # the member page, plus one lookup round for the two unknown


async def test_dry_run_writes_nothing_and_predicts_the_real_run(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(12)]
    tenant = load_tenant(emu, users, members=[users[0]["id"], users[11]["id"]])
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users[:8]], group_id=tenant.group_id)
    headers = await bearer(admin)

    dry = await sync(client, org.id, headers, dryRun=True)
    assert dry["dryRun"] is True and dry["status"] == "succeeded"
    assert emu.stats()["writes"] == 0
    assert emu.group_members(tenant.group_id) == sorted([users[0]["id"], users[11]["id"]]) or set(
        emu.group_members(tenant.group_id)
    ) == {users[0]["id"], users[11]["id"]}
    predicted = await outcomes(client, org.id, dry["id"], headers)
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(FlaggedMember)) == 0

    real = await sync(client, org.id, headers)
    done = await outcomes(client, org.id, real["id"], headers)
    assert predicted == done
    assert {k: v for k, v in dry["counts"].items()} == {k: v for k, v in real["counts"].items()}


async def test_concurrent_requests_make_one_run(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(5)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    # One request first: the token's first use is recorded on a second connection, and 20 first uses at once
    # would wait on each other for the connection pool (reported to the accounts package's owner).
    assert (await client.get(url(org.id, "settings"), headers=headers)).status_code == 200
    # Slow answers keep the run active while all 20 requests arrive.
    emu.set_faults(latency_ms=400)

    responses = await asyncio.gather(
        *(client.post(url(org.id, "sync-members"), headers=headers) for _ in range(20))
    )
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    run_id = responses[0].json()["id"]
    finished = await client.post(url(org.id, "sync-members?wait=30"), headers=headers)
    # Either the same run finished, or (if it had finished already) a new one.
    async with session_factory() as session:
        total = await session.scalar(
            select(func.count()).select_from(SyncRun).where(SyncRun.organization_id == org.id)
        )
    assert total in (1, 2)
    detail = await client.get(url(org.id, f"sync-runs/{run_id}"), headers=headers)
    assert detail.status_code == 200
    assert finished.status_code in (200, 202)
