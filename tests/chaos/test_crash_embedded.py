"""Crash: SIGKILL `equa serve` in the middle of a sync (embedded mode); after a restart the run is abandoned, the next
one converges, and the SQLite file is sound."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_harness import (
    FINAL_RUN_STATUSES,
    ServedApp,
    seed_group_id,
    seed_organization_sync,
    service_environment,
    sqlite_integrity_check,
    sync_run,
    tenant_member_emails,
    wait_for,
)

pytestmark = pytest.mark.chaos

LEASE_SECONDS = 10  # the smallest EQUA_SYNC_LEASE allows, so abandonment shows quickly


def test_kill_9_during_a_sync_then_restart_converges(tmp_path: Path, emu: Any) -> None:
    emulator = emu
    emulator.reset()
    emulator.set_faults()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'equa.db'}"
    team = tenant_member_emails(20)
    seeded = seed_organization_sync(database_url, admin_email=team[0], team=team)
    group_id = seed_group_id("empty-team")
    env = service_environment(emulator, database_url, tmp_path / "data", EQUA_SYNC_LEASE=str(LEASE_SECONDS))
    org = f"/api/v1/organizations/{seeded.organization_id}/microsoft"

    app = ServedApp(env, tmp_path / "serve-1.log")
    try:
        with httpx.Client(base_url=app.base_url, headers=seeded.headers, timeout=30) as http:
            assert http.post(f"{org}/link-group", json={"groupId": group_id}).status_code == 200
            # Slow Graph down so the run is certainly in flight when the process dies.
            emulator.set_faults(**{"latency_ms": 700})
            started = http.post(f"{org}/sync-members", json={})
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]
            wait_for(lambda: sync_run(http, org, run_id)["status"] == "running", 20, "the run to start")
            time.sleep(1.0)
        app.kill()
    finally:
        if app.alive():
            app.kill()
    assert sqlite_integrity_check(database_url) == "ok"

    emulator.set_faults()
    app = ServedApp(env, tmp_path / "serve-2.log")
    try:
        with httpx.Client(base_url=app.base_url, headers=seeded.headers, timeout=30) as http:
            # The killed process can send no more heartbeats; once the lease has run out, asking for a sync
            # must retire the interrupted run and start a fresh one.
            time.sleep(LEASE_SECONDS + 1)
            again = http.post(f"{org}/sync-members", json={}, params={"wait": 30})
            assert again.status_code in (200, 202), again.text
            second_id = again.json()["id"]
            assert second_id != run_id
            interrupted = sync_run(http, org, run_id)
            assert interrupted["status"] == "abandoned", interrupted
            assert interrupted["error"]["code"] == "run_abandoned"
            final = wait_for(
                lambda: (run := sync_run(http, org, second_id))["status"] in FINAL_RUN_STATUSES and run,
                60,
                "the second run",
            )
            assert final["status"] == "succeeded", final
    finally:
        app.stop()

    from graph_emulator.seeds import default_seed

    wanted = {u["id"] for u in default_seed()["tenants"][0]["users"] if u.get("mail") in set(team)}
    assert len(wanted) == len(team)
    assert wanted <= set(emulator.group_members(group_id)), "a team member is missing from the group"
    assert sqlite_integrity_check(database_url) == "ok"
    assert "Traceback" not in app.output()
