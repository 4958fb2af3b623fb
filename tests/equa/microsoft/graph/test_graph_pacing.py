"""Request pacing in the Graph client: every write it sends, alone or in a $batch, waits for its tenant's budget."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from equa.microsoft.graph import BatchRequest, GraphClient
from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.pacing import (
    RESOURCE_UNITS,
    WRITES,
    Budget,
    InProcessTokenBuckets,
    RedisTokenBuckets,
    RequestCost,
    build_request_pacer,
    request_cost,
)
from equa.settings import Settings

# Room for 4 writes at once, then 8 per second: small enough to see, fast enough for a test.
SMALL_WRITES = Budget("writes", capacity=4, window=0.5)


def test_the_budgets_stay_under_microsofts_limits() -> None:
    assert (WRITES.capacity, WRITES.window) == (2_850, 150.0)  # Microsoft: 3,000 per 2.5 min
    assert (RESOURCE_UNITS.capacity, RESOURCE_UNITS.window) == (
        3_200,
        10.0,
    )  # smallest tenant: 3,500 per 10 s


@pytest.mark.parametrize(
    ("method", "url", "params", "cost"),
    [
        ("PATCH", "/groups/g", None, RequestCost(writes=1, resource_units=1)),
        ("POST", "/groups/g/members/$ref", None, RequestCost(writes=1, resource_units=1)),
        ("DELETE", "/groups/g/members/u/$ref", None, RequestCost(writes=1, resource_units=1)),
        ("GET", "/groups/g/members", None, RequestCost(resource_units=3)),
        ("GET", "/groups/g/members?$select=id&$top=999", None, RequestCost(resource_units=2)),
        ("GET", "/groups/g/members", {"$select": "id", "$top": "5"}, RequestCost(resource_units=1)),
        (
            "GET",
            "/users?$filter=mail%20eq%20'a'&$select=id,mail&$top=30",
            None,
            RequestCost(resource_units=1),
        ),
        ("GET", "/users/u", None, RequestCost(resource_units=2)),
        ("GET", "/groups/g?$expand=owners", None, RequestCost(resource_units=2)),
        ("GET", "/groups/g?$select=id&$top=1", None, RequestCost(resource_units=1)),  # never below 1
    ],
)
def test_a_request_costs_what_microsoft_charges(
    method: str, url: str, params: dict[str, str] | None, cost: RequestCost
) -> None:
    assert request_cost(method, url, params) == cost


async def test_in_process_buckets_spend_a_budget_at_its_rate_in_arrival_order() -> None:
    budget = Budget("test-writes", capacity=10, window=0.5)  # 20 units per second
    buckets = InProcessTokenBuckets()
    tenant = str(uuid.uuid4())
    assert await buckets.take(tenant, budget, 10) == 0  # a full bucket answers at once
    started = time.monotonic()
    waits = await asyncio.gather(*(buckets.take(tenant, budget, 4) for _ in range(3)))
    elapsed = time.monotonic() - started
    # 12 more units at 20 per second: the callers are served in turn, the last after about 0.6 s.
    assert waits == sorted(waits) and waits[0] == pytest.approx(0.2, abs=0.05)
    assert elapsed == pytest.approx(0.6, abs=0.15)
    assert await buckets.take(str(uuid.uuid4()), budget, 10) == 0  # another tenant has its own bucket


def _group_and_users(emu: Any, count: int) -> tuple[str, list[str]]:
    nickname = f"pace-{uuid.uuid4().hex[:10]}"
    group = emu.add_group(displayName=nickname, mailNickname=nickname, groupTypes=["Unified"])
    users = []
    for _ in range(count):
        name = f"pace-{uuid.uuid4().hex[:10]}"
        users.append(
            emu.add_user(
                displayName=name, mailNickname=name, userPrincipalName=f"{name}@{emu.tenant_domain}"
            )["id"]
        )
    return group["id"], users


async def test_single_writes_and_batched_writes_share_the_tenants_write_budget(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    group_id, users = _group_and_users(emu, 8)
    client = make_client(write_budget=SMALL_WRITES)
    await client.get(f"/groups/{group_id}")  # the token, before timing starts
    odata = [client.url_for(f"directoryObjects/{u}") for u in users]

    started = time.monotonic()
    # Writes made by hand, one request each: the first 4 spend the whole bucket.
    for target in odata[:4]:
        await client.post(f"/groups/{group_id}/members/$ref", json={"@odata.id": target})
    by_hand = time.monotonic() - started
    # 4 more writes inside one $batch wait for 4 units to refill at 8 per second: about 0.5 s.
    results = await client.batch(
        [BatchRequest("POST", f"/groups/{group_id}/members/$ref", body={"@odata.id": t}) for t in odata[4:]]
    )
    batched = time.monotonic() - started - by_hand
    assert [r.status for r in results] == [204] * 4
    assert sorted(emu.group_members(group_id)) == sorted(users)
    assert by_hand < 0.4
    assert batched == pytest.approx(0.5, abs=0.2)

    # Reads take resource units, not writes: they go straight through an empty write bucket.
    started = time.monotonic()
    await client.batch([BatchRequest("GET", f"/users/{u}") for u in users])
    assert time.monotonic() - started < 0.4


async def test_dry_run_writes_are_not_sent_and_take_nothing(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    group_id, users = _group_and_users(emu, 12)
    client = make_client(write_budget=SMALL_WRITES, dry_run=True)
    await client.get(f"/groups/{group_id}")
    started = time.monotonic()
    for user_id in users[:6]:
        await client.delete(f"/groups/{group_id}/members/{user_id}/$ref")
    await client.batch([BatchRequest("DELETE", f"/groups/{group_id}/members/{u}/$ref") for u in users[6:]])
    # 12 writes against a bucket of 4 refilled at 8 per second would take about a second if they were sent.
    assert time.monotonic() - started < 0.4
    assert len(client.recorded_writes) == 12


def _redis_url() -> str:
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not url:
        pytest.skip("EQUA_TEST_REDIS_URL is not set")
    return url


@pytest.mark.redis
async def test_redis_buckets_share_one_budget_between_processes() -> None:
    url = _redis_url()
    budget = Budget("test-writes", capacity=10, window=0.5)
    tenant = str(uuid.uuid4())
    first, second = RedisTokenBuckets(url), RedisTokenBuckets(url)
    try:
        assert await first.take(tenant, budget, 10) == 0
        started = time.monotonic()
        await second.take(tenant, budget, 5)  # the other "process" sees the bucket the first one emptied
        waited = time.monotonic() - started
        # Five tokens refill in a quarter of a second; a busy machine may add to that, never take from it.
        assert 0.2 <= waited < 1.0, waited
    finally:
        await first.aclose()
        await second.aclose()


async def test_without_redis_requests_go_unpaced_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 1: every take fails at once.
    pacer = build_request_pacer("redis://127.0.0.1:1/0", writes=SMALL_WRITES)
    tenant = str(uuid.uuid4())
    caplog.set_level(logging.WARNING, logger="equa.microsoft.graph.pacing")
    started = time.monotonic()
    try:
        for _ in range(10):  # more than the bucket holds
            assert await pacer.pace(tenant, RequestCost(writes=1, resource_units=1)) == 0
    finally:
        await pacer.aclose()
    assert time.monotonic() - started < 2
    assert any("unavailable" in record.getMessage() for record in caplog.records)


def test_operators_size_the_budgets_to_their_tenant(tmp_path: Any) -> None:
    base = {"data_dir": tmp_path, "secret_key": "k" * 40}
    default = GraphConfig.from_settings(Settings(**base))
    assert default.write_budget == WRITES and default.resource_unit_budget == RESOURCE_UNITS
    large = GraphConfig.from_settings(
        Settings(**base, EQUA_GRAPH_RESOURCE_UNIT_BUDGET=7_500, EQUA_GRAPH_WRITE_BUDGET=2_950)
    )
    assert (large.resource_unit_budget.capacity, large.resource_unit_budget.window) == (7_500, 10.0)
    assert (large.write_budget.capacity, large.write_budget.window) == (2_950, 150.0)
    with pytest.raises(ValueError, match="EQUA_GRAPH_WRITE_BUDGET"):
        Settings(
            **base, EQUA_GRAPH_WRITE_BUDGET=3_001
        )  # above what Microsoft allows: every sync would hit 429s
