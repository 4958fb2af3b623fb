"""measure_usage(): the Graph traffic of one piece of work, as Graph itself counted it, and nobody else's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from equa.microsoft.graph import BatchRequest, GraphClient, GraphUsage, measure_usage


def _users(emu: Any, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        nickname = f"usage-{uuid.uuid4().hex[:10]}"
        user = emu.add_user(
            displayName=nickname,
            mailNickname=nickname,
            userPrincipalName=f"{nickname}@{emu.tenant_domain}",
            mail=f"{nickname}@{emu.tenant_domain}",
        )
        ids.append(user["id"])
    return ids


async def test_usage_matches_what_graph_served_through_429s_and_batches(emu: Any, graph: GraphClient) -> None:
    users = _users(emu, 30)
    await graph.get("/groups", params={"$top": "1"})  # the token, before counting starts
    emu.reset_stats()
    emu.set_faults(rate_429=0.3, retry_after_seconds=1, seed_random=3)
    try:
        with measure_usage() as usage:
            for user_id in users[:4]:
                await graph.get(f"/users/{user_id}")
            results = await graph.batch([BatchRequest("GET", f"/users/{u}") for u in users])
    finally:
        emu.set_faults()
    served = emu.stats()
    assert [r.body["id"] for r in results] == users
    assert usage.requests == served["graph_requests"] > 4
    assert usage.batch_subrequests == served["batch_subrequests"] >= 30
    assert usage.throttled == served["throttled"] > 0
    # Every 429 was followed by a resend, of the request or of the throttled sub-requests.
    assert usage.retries == usage.throttled


async def test_concurrent_measurements_count_only_their_own_work_and_nest(
    emu: Any, graph: GraphClient
) -> None:
    users = _users(emu, 3)
    await graph.get("/groups", params={"$top": "1"})

    async def reads(count: int) -> GraphUsage:
        with measure_usage() as usage:
            # Work fanned out to tasks started inside the block counts too.
            await asyncio.gather(*(graph.get(f"/users/{users[i % 3]}") for i in range(count)))
            return usage

    with measure_usage() as outer:
        first, second = await asyncio.gather(reads(2), reads(5))
        await graph.get(f"/users/{users[0]}")
    await graph.get(f"/users/{users[1]}")  # outside every measurement: counted nowhere

    assert (first.requests, second.requests) == (2, 5)
    assert outer.requests == 8
    assert outer.batch_subrequests == outer.throttled == outer.retries == 0


async def test_dry_run_writes_are_not_counted_as_traffic(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    (user_id,) = _users(emu, 1)
    client = make_client(dry_run=True)
    await client.get("/groups", params={"$top": "1"})
    emu.reset_stats()
    with measure_usage() as usage:
        await client.delete(f"/users/{user_id}")
        await client.batch(
            [
                BatchRequest("PATCH", f"/users/{user_id}", body={"jobTitle": "x"}),
                BatchRequest("GET", f"/users/{user_id}"),
            ]
        )
    assert emu.stats()["writes"] == 0
    assert (usage.requests, usage.batch_subrequests) == (emu.stats()["graph_requests"], 1) == (1, 1)
