"""A run shows its own Microsoft Graph traffic (requests, $batch sub-requests, 429s, retries) and feeds /metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sync_support import (
    directory_user,
    emulator_settings,
    load_tenant,
    make_team,
    semu,
    sync_emulator,
)

from equa.settings import Settings

__all__ = ["semu", "sync_emulator"]

METRICS_TOKEN = "sync-metrics-token-" + "s" * 24


@pytest.fixture
def settings(make_settings: Callable[..., Settings], semu: Any) -> Settings:
    return emulator_settings(make_settings, semu, metrics_token=METRICS_TOKEN)


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_a_run_counts_its_graph_traffic_and_the_metrics_count_the_run(
    client: httpx.AsyncClient, semu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(60)]
    # person0-54 are on the team and not in the group; person55-59 are in the group and not on the team.
    tenant = load_tenant(semu, users, members=[u["id"] for u in users[55:]])
    org, admin, _ = await make_team(
        session_factory, [u["mail"] for u in users[:55]], group_id=tenant.group_id
    )
    headers = await bearer(admin)
    before = await scrape(client)

    semu.set_faults(**{"rate_429": 0.25, "retry_after_seconds": 1})
    semu.reset_stats()
    response = await client.post(url(org.id, "sync-members?wait=50"), headers=headers)
    semu.set_faults()
    run = response.json()
    assert response.status_code == 200 and run["status"] == "succeeded", run
    emulated = semu.stats()

    stats = run["graphStats"]
    assert stats["requests"] == emulated["graph_requests"] > 0
    assert stats["batchSubrequests"] == emulated["batch_subrequests"] > 0
    assert stats["throttled"] == emulated["throttled"] > 0
    assert stats["retries"] >= stats["throttled"]
    fetched = (await client.get(url(org.id, f"sync-runs/{run['id']}"), headers=headers)).json()
    assert fetched["graphStats"] == stats

    after = await scrape(client)
    succeeded = ("equa_sync_runs_total", (("result", "succeeded"),))
    assert after[succeeded] == before.get(succeeded, 0) + 1
    flagged = ("equa_sync_members_flagged_total", ())
    assert after[flagged] == before.get(flagged, 0) + 5

    # A dry run sends no write, and its numbers are its own, not the previous run's.
    semu.reset_stats()
    dry = (
        await client.post(url(org.id, "sync-members?wait=30"), json={"dryRun": True}, headers=headers)
    ).json()
    assert dry["status"] == "succeeded" and semu.stats()["writes"] == 0
    assert dry["graphStats"]["requests"] == semu.stats()["graph_requests"]
    assert dry["graphStats"]["throttled"] == 0
