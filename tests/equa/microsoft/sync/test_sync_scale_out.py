"""Scaled out: two `equa worker` processes and an API process sharing PostgreSQL and Redis.

30 organizations synced at once, each exactly once; then a worker killed with SIGKILL mid-run: its run becomes
abandoned after the lease, and a new run converges.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sync_support import DOMAIN, directory_user, make_team

from equa.app import create_app
from equa.microsoft.models import SyncRun
from equa.microsoft.tasks import QUEUE_NAME

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ORGANIZATIONS = 30
TEAM_SIZE = 8
LEASE_SECONDS = 10


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not url:
        pytest.skip("needs EQUA_TEST_REDIS_URL")
    assert url.rstrip("/").endswith("/15"), "the tests use Redis database 15 only"
    yield url
    import redis

    client = redis.Redis.from_url(url)
    client.delete(QUEUE_NAME)
    client.close()


@pytest.fixture
def scale_settings(emulator_settings: Any, redis_url: str, database_url: str) -> Any:
    if not database_url.startswith("postgresql"):
        pytest.skip("the scaled-out shape runs on PostgreSQL")
    return emulator_settings("sync", broker_url=redis_url, sync_lease_seconds=LEASE_SECONDS)


@pytest_asyncio.fixture
async def api(scale_settings: Any, clean_database: str) -> AsyncIterator[Any]:
    application = create_app(scale_settings)
    async with LifespanManager(application):
        yield application


def start_worker(settings: Any, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EQUA_DATABASE_URL": settings.database_url,
        "EQUA_BROKER_URL": settings.broker_url,
        "EQUA_SYNC_LEASE": str(LEASE_SECONDS),
        "EQUA_LOG_LEVEL": "INFO",
        "EQUA_DATA_DIR": str(tmp_path / name),
        "EQUA_SECRET_KEY": settings.secret_key.get_secret_value(),
        "MS_AUTH_ENABLED": "true",
        "MS_AUTH_CLIENT_ID": settings.ms_auth_client_id,
        "MS_AUTH_TENANT_ID": settings.ms_auth_tenant_id,
        "MS_AUTH_SECRET": settings.ms_auth_secret.get_secret_value(),
        "MS_AUTHORITY_HOST": settings.ms_authority_host,
        "MS_GRAPH_URL": settings.ms_graph_url,
        "MS_CA_BUNDLE": str(settings.ms_ca_bundle),
        # The organizations link seeded tenant groups directly, as before the group scope.
        "MS_GROUP_SCOPE": settings.ms_group_scope,
    }
    equa = Path(sys.executable).with_name("equa")
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen([str(equa), "worker", "--concurrency", "20"], env=env, stdout=log, stderr=log)


def tenant_with_groups(
    emu: Any, organizations: int, team_size: int
) -> list[tuple[str, list[dict[str, Any]]]]:
    from graph_emulator import seeds

    users = [directory_user(i) for i in range(organizations * team_size)]
    groups = []
    for index in range(organizations):
        group_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sync-scale/{index}"))
        groups.append(
            {
                "id": group_id,
                "displayName": f"Team {index}",
                "groupTypes": ["Unified"],
                "mailEnabled": True,
                "securityEnabled": False,
                "mailNickname": f"team-{index}",
                "visibility": "Private",
                "members": [],
                "owners": [],
            }
        )
    emu.reset(
        {
            "tenants": [
                {
                    "id": emu.tenant_id,
                    "domain": DOMAIN,
                    "displayName": "Contoso",
                    "size": "M",
                    "apps": seeds.default_apps(),
                    "users": users,
                    "groups": groups,
                }
            ]
        }
    )
    return [(g["id"], users[i * team_size : (i + 1) * team_size]) for i, g in enumerate(groups)]


async def runs_of(session_factory: Any, org_id: uuid.UUID) -> list[SyncRun]:
    async with session_factory() as session:
        return list(
            await session.scalars(
                select(SyncRun).where(SyncRun.organization_id == org_id).order_by(SyncRun.created_at)
            )
        )


async def wait_until(predicate: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_two_workers_sync_thirty_organizations_once_each_and_survive_a_killed_worker(
    api: Any, scale_settings: Any, emu: Any, bearer: Any, tmp_path: Path
) -> None:
    session_factory = api.state.session_factory
    tenant = tenant_with_groups(emu, ORGANIZATIONS + 1, TEAM_SIZE)
    orgs = []
    for group_id, users in tenant[:ORGANIZATIONS]:
        org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=group_id)
        orgs.append((org, await bearer(admin), group_id, users))
    emu.set_faults(latency_ms=20)
    workers = [start_worker(scale_settings, tmp_path, f"w{i}") for i in range(2)]
    try:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # Each token's first use is recorded on a second connection; 30 first uses at once would wait on
            # each other for the connection pool, so each token is used once beforehand.
            for org, headers, _, _ in orgs:
                await client.get(f"/api/v1/organizations/{org.id}/microsoft/settings", headers=headers)
            answers = await asyncio.gather(
                *(
                    client.post(f"/api/v1/organizations/{org.id}/microsoft/sync-members", headers=headers)
                    for org, headers, _, _ in orgs
                )
            )
            assert all(a.status_code == 202 for a in answers), [a.text for a in answers]

            async def all_finished() -> bool:
                for org, _, _, _ in orgs:
                    runs = await runs_of(session_factory, org.id)
                    if not runs or runs[-1].status in ("queued", "running"):
                        return False
                return True

            await wait_until(all_finished, 45)
            for org, _, group_id, users in orgs:
                runs = await runs_of(session_factory, org.id)
                assert [r.status for r in runs] == ["succeeded"], (
                    org.id,
                    [(r.status, r.error_message) for r in runs],
                )
                assert runs[0].counts["added"] == TEAM_SIZE
                assert set(emu.group_members(group_id)) == {u["id"] for u in users}

            # One worker left; it is killed in the middle of a slow run.
            stop(workers[1])
            group_id, users = tenant[ORGANIZATIONS]
            org, admin, _ = await make_team(session_factory, [u["mail"] for u in users], group_id=group_id)
            headers = await bearer(admin)
            emu.set_faults(latency_ms=1500)
            url = f"/api/v1/organizations/{org.id}/microsoft/sync-members"
            first = (await client.post(url, headers=headers)).json()

            async def running() -> bool:
                return (await runs_of(session_factory, org.id))[-1].status == "running"

            await wait_until(running, 15)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            emu.set_faults(latency_ms=0)
            # While the lease runs, the run still counts as active: asking again returns it.
            assert (await client.post(url, headers=headers)).json()["id"] == first["id"]

            workers.append(start_worker(scale_settings, tmp_path, "w2"))
            await asyncio.sleep(LEASE_SECONDS + 1)
            again = await client.post(url + "?wait=30", headers=headers)
            assert again.status_code == 200, again.text
            assert again.json()["id"] != first["id"]
            assert again.json()["status"] == "succeeded"
            runs = await runs_of(session_factory, org.id)
            assert [r.status for r in runs] == ["abandoned", "succeeded"]
            assert set(emu.group_members(group_id)) == {u["id"] for u in users}
    finally:
        for worker in workers:
            stop(worker)
