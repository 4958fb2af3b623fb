"""Crash, scaled-out shape: `equa serve` and `equa worker` as separate processes on PostgreSQL, with Redis as the
task broker and the shared Graph throttle gate. SIGKILL the worker mid-sync; once a new worker is up and the lease
has run out, the run is abandoned and the next one converges, through the API process.

(tests/equa/microsoft/sync/test_sync_scale_out.py kills a worker under an in-process API without the Redis throttle
gate; this one runs the deployment an operator has: every piece its own process, configured by environment.)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_harness import (
    FINAL_RUN_STATUSES,
    ServedApp,
    Worker,
    clear_redis_keys,
    seed_group_id,
    seed_organization_sync,
    service_environment,
    sync_run,
    tenant_member_emails,
    wait_for,
)

from pg_databases import create_postgres_database, drop_postgres_database

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.redis]

LEASE_SECONDS = 10  # the smallest EQUA_SYNC_LEASE allows
REDIS_KEYS = ("equa:sync*", "equa:graph:*")


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not url:
        pytest.skip(
            "the scaled-out crash test needs Redis: set EQUA_TEST_REDIS_URL (make test does when it runs)"
        )
    assert url.rstrip("/").endswith("/15"), "the tests use Redis database 15 only"
    clear_redis_keys(url, *REDIS_KEYS)
    yield url
    clear_redis_keys(url, *REDIS_KEYS)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = os.environ.get("EQUA_TEST_DATABASE_URL")
    if not base:
        pytest.skip("the scaled-out crash test needs PostgreSQL: set EQUA_TEST_DATABASE_URL")
    url = asyncio.run(create_postgres_database(base, prefix="equa_crash"))
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(base, url))


def test_kill_9_of_a_worker_mid_sync_then_a_new_worker_converges(
    tmp_path: Path, emu: Any, redis_url: str, postgres_url: str
) -> None:
    emulator = emu
    emulator.reset()
    emulator.set_faults()
    team = tenant_member_emails(20)
    seeded = seed_organization_sync(postgres_url, admin_email=team[0], team=team)
    group_id = seed_group_id("empty-team")
    env = service_environment(
        emulator,
        postgres_url,
        tmp_path / "data",
        EQUA_BROKER_URL=redis_url,
        EQUA_REDIS_URL=redis_url,
        EQUA_SYNC_LEASE=str(LEASE_SECONDS),
    )
    org = f"/api/v1/organizations/{seeded.organization_id}/microsoft"
    started = time.monotonic()

    api = ServedApp(env, tmp_path / "serve.log")
    workers = [Worker(env, tmp_path / "worker-1.log")]
    try:
        with httpx.Client(base_url=api.base_url, headers=seeded.headers, timeout=60) as http:
            assert http.post(f"{org}/link-group", json={"groupId": group_id}).status_code == 200
            # Slow Graph down so the run is certainly in flight when the worker dies.
            emulator.set_faults(**{"latency_ms": 700})
            first = http.post(f"{org}/sync-members", json={})
            assert first.status_code == 202, first.text
            run_id = first.json()["id"]
            wait_for(
                lambda: sync_run(http, org, run_id)["status"] == "running", 30, "a worker to take the run"
            )
            time.sleep(1.0)
            workers[0].kill()
            emulator.set_faults()

            # Within the lease the run still counts as active: asking again returns it, not a second run.
            assert http.post(f"{org}/sync-members", json={}).json()["id"] == run_id
            # The API process keeps answering from Graph through the shared throttle gate.
            assert http.get(f"{org}/group").status_code == 200

            workers.append(Worker(env, tmp_path / "worker-2.log"))
            time.sleep(LEASE_SECONDS + 1)
            again = http.post(f"{org}/sync-members", json={}, params={"wait": 30})
            assert again.status_code in (200, 202), again.text
            second_id = again.json()["id"]
            assert second_id != run_id
            interrupted = sync_run(http, org, run_id)
            assert interrupted["status"] == "abandoned", interrupted
            assert interrupted["error"]["code"] == "run_abandoned"
            assert interrupted["error"]["action"], interrupted
            final = wait_for(
                lambda: (run := sync_run(http, org, second_id))["status"] in FINAL_RUN_STATUSES and run,
                60,
                "the second run",
            )
            assert final["status"] == "succeeded", final
            statuses = [r["status"] for r in http.get(f"{org}/sync-runs").json()["items"]]
            assert sorted(statuses) == ["abandoned", "succeeded"], statuses
    finally:
        for worker in workers:
            worker.stop()
        api.stop()

    from graph_emulator.seeds import default_seed

    wanted = {u["id"] for u in default_seed()["tenants"][0]["users"] if u.get("mail") in set(team)}
    assert len(wanted) == len(team)
    assert set(emulator.group_members(group_id)) == wanted, "the group is not exactly the team"
    for process in (api, *workers[1:]):
        assert "Traceback" not in process.output(), process.output()[-3000:]
    print(f"[crash] worker killed mid-sync: abandoned, then converged; {time.monotonic() - started:.1f} s")
