"""A run shows its own Microsoft Graph traffic (requests, $batch sub-requests, 429s, retries) and feeds /metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sync_support import directory_user, load_tenant, make_team

from equa.settings import Settings

METRICS_TOKEN = "sync-metrics-token-" + "s" * 24


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    return emulator_settings("sync", metrics_token=METRICS_TOKEN)


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
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(60)]
    # person0-54 are on the team and not in the group; person55-59 are in the group and not on the team.
    tenant = load_tenant(emu, users, members=[u["id"] for u in users[55:]])
    org, admin, _ = await make_team(
        session_factory, [u["mail"] for u in users[:55]], group_id=tenant.group_id
    )
    headers = await bearer(admin)
    before = await scrape(client)

    emu.set_faults(**{"rate_429": 0.25, "retry_after_seconds": 1})
    emu.reset_stats()
    response = await client.post(url(org.id, "sync-members?wait=50"), headers=headers)
    emu.set_faults()
    run = response.json()
    assert response.status_code == 200 and run["status"] == "succeeded", run
    emulated = emu.stats()

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
    emu.reset_stats()
    dry = (
        await client.post(url(org.id, "sync-members?wait=30"), json={"dryRun": True}, headers=headers)
    ).json()
    assert dry["status"] == "succeeded" and emu.stats()["writes"] == 0
    assert dry["graphStats"]["requests"] == emu.stats()["graph_requests"]
    assert dry["graphStats"]["throttled"] == 0
