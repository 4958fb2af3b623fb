"""Push bench: Graph requests and latency of one team change carried to the group (autoSync on).

    .venv/bin/python bench/push_bench.py [--changes 10] [--latency-ms 50]

The app runs in this process (embedded broker, SQLite), linked to an empty group of the emulator, which answers
every Graph request after --latency-ms with no replication lag. One team change at a time: --changes people join
(invited, then the invitation accepted), then they leave again (removed through the API, removeDeparted on).
Latency runs from the API's answer (the accepted invitation, the DELETE) until the emulator has the change in the
group, coalescing window included; Graph requests are the emulator's count for that change. Prints p50/p95 and
the requests; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GROUP_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "push-bench/group"))
PASSWORD = "push bench password 1"
SECONDS_PER_CHANGE = 1.6  # measured: the coalescing window, the run, and the bench's own settling


@dataclass
class Change:
    latency: float
    requests: int
    subrequests: int
    status: str


def tenant_seed(emu: Any, people: int) -> dict[str, Any]:
    from graph_emulator import seeds

    users = [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"push-bench/{i}")),
            "displayName": f"Person {i}",
            "mail": f"person{i}@{emu.tenant_domain}",
            "mailNickname": f"person{i}",
            "userPrincipalName": f"person{i}@{emu.tenant_domain}",
            "userType": "Member",
            "accountEnabled": True,
        }
        for i in range(people)
    ]
    group = {
        "id": GROUP_ID,
        "displayName": "Push bench team",
        "groupTypes": ["Unified"],
        "mailEnabled": True,
        "securityEnabled": False,
        "mailNickname": "push-bench-team",
        "visibility": "Private",
        "members": [],
        "owners": [],
    }
    tenant = {
        "id": emu.tenant_id,
        "domain": emu.tenant_domain,
        "displayName": "Contoso",
        "size": "S",
        "apps": seeds.default_apps(),
        "users": users,
        "groups": [group],
    }
    return {"tenants": [tenant]}


async def prepare(session_factory: Any) -> tuple[uuid.UUID, str]:
    """An organization with autoSync and removeDeparted on, linked to the group; its admin's API token."""
    from equa.accounts.service import create_user
    from equa.accounts.tokens import create_api_token
    from equa.organizations.models import Membership, Organization, Role

    async with session_factory() as session:
        admin = await create_user(session, "admin@equa.example", "Admin")
        organization = Organization(
            name="Push bench",
            microsoft_group=uuid.UUID(GROUP_ID),
            microsoft_auto_sync=True,
            microsoft_remove_departed=True,
        )
        session.add(organization)
        await session.flush()
        session.add(Membership(organization_id=organization.id, user_id=admin.id, role=Role.ADMIN))
        _, token = await create_api_token(session, admin, "push bench")
        await session.commit()
        return organization.id, token


async def until_in_group(emu: Any, directory_id: str, present: bool, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        members = await asyncio.to_thread(emu.group_members, GROUP_ID)
        if (directory_id in members) == present:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("the change did not reach the group in time")


async def finished_push_runs(session_factory: Any, organization_id: uuid.UUID, count: int) -> list[Any]:
    """Wait until `count` push runs exist and have finished; returns them, oldest first."""
    from sqlalchemy import select

    from equa.microsoft.models import SyncRun
    from equa.microsoft.sync.runs import FINISHED_STATUSES

    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        async with session_factory() as session:
            runs = list(
                await session.scalars(
                    select(SyncRun)
                    .where(SyncRun.organization_id == organization_id, SyncRun.trigger == "push")
                    .order_by(SyncRun.created_at)
                )
            )
        if len(runs) >= count and all(r.status in FINISHED_STATUSES for r in runs):
            return runs
        await asyncio.sleep(0.05)
    raise RuntimeError("the push run did not finish in time")


async def measure(emu: Any, changes: int, data_dir: Path) -> tuple[list[Change], list[Change]]:
    import httpx
    from asgi_lifespan import LifespanManager

    from equa.app import create_app
    from equa.db.migrate import upgrade_database_async
    from equa.settings import Settings

    url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
    await upgrade_database_async(url)
    settings = Settings(
        database_url=url,
        data_dir=data_dir,
        secret_key="push-bench-secret-key-" + "k" * 30,
        ms_group_scope="tenant",
        ms_auth_enabled=True,
        ms_auth_client_id=emu.client_id,
        ms_auth_tenant_id=emu.tenant_id,
        ms_auth_secret=emu.client_secret,
        ms_authority_host=emu.base_url,
        ms_graph_url=emu.graph_url,
        ms_ca_bundle=str(emu.ca_path),
        sync_interval_seconds=24 * 3600,  # no scheduled sync during the bench
    )
    application = create_app(settings)
    joins: list[Change] = []
    leaves: list[Change] = []
    async with LifespanManager(application):
        session_factory = application.state.session_factory
        organization_id, token = await prepare(session_factory)
        headers = {"Authorization": f"Bearer {token}"}
        members_url = f"/api/v1/organizations/{organization_id}/members"
        transport = httpx.ASGITransport(app=application)
        people: list[tuple[uuid.UUID, str]] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for index in range(changes):
                directory_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"push-bench/{index}"))
                invited = await client.post(
                    members_url,
                    json={"email": f"person{index}@{emu.tenant_domain}", "role": "member"},
                    headers=headers,
                )
                invited.raise_for_status()
                token_path = invited.json()["invitationUrl"].rsplit("/invitations/", 1)[1]
                await asyncio.to_thread(emu.reset_stats)
                accepted = await client.post(
                    f"/api/v1/invitations/{token_path}",
                    json={"displayName": f"Person {index}", "password": PASSWORD},
                )
                answered = time.perf_counter()
                accepted.raise_for_status()
                await until_in_group(emu, directory_id, present=True)
                latency = time.perf_counter() - answered
                run = (await finished_push_runs(session_factory, organization_id, len(joins) + 1))[-1]
                stats = await asyncio.to_thread(emu.stats)
                joins.append(Change(latency, stats["graph_requests"], stats["batch_subrequests"], run.status))
                people.append((uuid.UUID(accepted.json()["user"]["id"]), directory_id))
            for user_id, directory_id in people:
                await asyncio.to_thread(emu.reset_stats)
                removed = await client.delete(f"{members_url}/{user_id}", headers=headers)
                answered = time.perf_counter()
                removed.raise_for_status()
                await until_in_group(emu, directory_id, present=False)
                latency = time.perf_counter() - answered
                done = len(joins) + len(leaves) + 1
                run = (await finished_push_runs(session_factory, organization_id, done))[-1]
                stats = await asyncio.to_thread(emu.stats)
                leaves.append(
                    Change(latency, stats["graph_requests"], stats["batch_subrequests"], run.status)
                )
    return joins, leaves


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def report(name: str, changes: list[Change]) -> None:
    latencies = [c.latency for c in changes]
    requests = [c.requests for c in changes]
    statuses = sorted({c.status for c in changes})
    print(
        f"  {name:<22} {len(changes):>3}   {max(requests):>3} / {statistics.mean(requests):>4.1f}"
        f"   {statistics.mean(c.subrequests for c in changes):>6.1f}"
        f"   {percentile(latencies, 0.5):>6.2f} s  {percentile(latencies, 0.95):>6.2f} s  {max(latencies):>6.2f} s"
        f"   {', '.join(statuses)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10, help="people who join, then leave, one at a time")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.epilog = (
        f"Expected duration: about {10 + 2 * 10 * SECONDS_PER_CHANGE:.0f} s with the defaults "
        f"(about {SECONDS_PER_CHANGE} s per change: the one-second coalescing window, then the run)."
    )
    args = parser.parse_args()
    print(f"Expected duration: about {10 + 2 * args.changes * SECONDS_PER_CHANGE:.0f} s.", flush=True)
    from graph_emulator.testing import start_emulator

    with tempfile.TemporaryDirectory() as tmp:
        emu = start_emulator(Path(tmp) / "emulator", throttling=True, lag_seconds=0)
        try:
            emu.reset(tenant_seed(emu, args.changes))
            emu.set_lag(0)
            emu.set_faults(latency_ms=args.latency_ms)
            data_dir = Path(tmp) / "data"
            data_dir.mkdir()
            joins, leaves = asyncio.run(measure(emu, args.changes, data_dir))
        finally:
            emu.stop()
    print(
        f"\nOne team change at a time, pushed to the group (autoSync on): emulator at {args.latency_ms:g} ms per "
        "request, no replication lag, app in this process (embedded broker, SQLite)."
    )
    print(
        f"  {'change':<22} {'n':>3}   {'Graph requests':>14}   {'sub-req':>6}   "
        f"{'p50':>8}  {'p95':>8}  {'max':>8}   runs"
    )
    print(f"  {'':<22} {'':>3}   {'max / mean':>14}   {'mean':>6}   latency: API answer -> in the group")
    report("member joins", joins)
    report("member leaves", leaves)
    print("  Goal: at most 2 Graph requests (a lookup and a write) and within 2 s of the API's answer.")


if __name__ == "__main__":
    main()
