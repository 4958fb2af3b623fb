"""GraphClient against the emulator: throttling, retries, paging, $batch, dry-run and secrets kept out of sight."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest

from equa.microsoft.graph.batch import BatchRequest
from equa.microsoft.graph.client import GraphClient
from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.errors import (
    GraphAuthenticationFailed,
    GraphError,
    GraphNotFound,
    GraphThrottled,
    GraphTransient,
)
from equa.microsoft.graph.retry import RetryPolicy


def _new_user(emu: Any) -> str:
    user_id = str(uuid.uuid4())
    emu.add_user(
        id=user_id, displayName=f"User {user_id[:8]}", userPrincipalName=f"u{user_id[:8]}@contoso.test"
    )
    return user_id


def _new_group(emu: Any, members: list[str] | None = None) -> str:
    group_id = str(uuid.uuid4())
    emu.add_group(
        id=group_id,
        displayName=f"Group {group_id[:8]}",
        mailNickname=f"g{group_id[:8]}",
        mailEnabled=True,
        securityEnabled=True,
        groupTypes=["Unified"],
        members=members or [],
    )
    return group_id


class SendLog:
    """httpx event hooks that note when each request left and what came back: the wire, seen from our side."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, bytes]] = []
        self.answers: list[tuple[float, str, int, Any]] = []
        self.on_answer: Callable[[int], None] | None = None

    async def request(self, request: httpx.Request) -> None:
        self.sent.append((time.monotonic(), request.url.path, request.content))

    async def response(self, response: httpx.Response) -> None:
        await response.aread()
        body: Any = None
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
        self.answers.append((time.monotonic(), response.request.url.path, response.status_code, body))
        if self.on_answer is not None:
            self.on_answer(response.status_code)

    def http_client(self, config: GraphConfig) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=config.ssl_context(),
            timeout=config.timeout_seconds,
            event_hooks={"request": [self.request], "response": [self.response]},
        )


async def test_429_holds_every_caller_of_the_tenant_until_retry_after(
    emu: Any, graph_config: GraphConfig, make_client: Callable[..., GraphClient]
) -> None:
    wire = SendLog()
    http = wire.http_client(graph_config)
    client = make_client(http=http)
    await client.get("/groups", params={"$top": "1"})  # token in cache, so timing covers Graph only
    emu.set_faults(rate_429=1.0, retry_after_seconds=2)
    first_429: list[float] = []

    def on_answer(status: int) -> None:
        if status == 429 and not first_429:
            first_429.append(time.monotonic())
            emu.set_faults(rate_429=0.0)

    wire.on_answer = on_answer
    try:
        responses = await asyncio.gather(*(client.get("/groups", params={"$top": "1"}) for _ in range(50)))
    finally:
        await http.aclose()
    assert [r.status for r in responses] == [200] * 50
    assert first_429
    sent_after = [at for at, path, _ in wire.sent if at > first_429[0]]
    assert sent_after, "the callers never tried again"
    assert min(sent_after) - first_429[0] >= 1.95
    assert emu.stats()["throttled"] >= 1


async def test_throttled_batch_items_are_retried_alone(
    emu: Any, graph_config: GraphConfig, make_client: Callable[..., GraphClient]
) -> None:
    users = [_new_user(emu) for _ in range(20)]
    wire = SendLog()
    http = wire.http_client(graph_config)
    client = make_client(http=http)
    await client.get("/groups", params={"$top": "1"})
    emu.set_faults(rate_429=0.4, retry_after_seconds=1, seed_random=11)
    try:
        results = await client.batch([BatchRequest("GET", f"/users/{u}") for u in users])
    finally:
        await http.aclose()
    emu.set_faults(rate_429=0.0)
    assert [r.status for r in results] == [200] * 20
    assert [r.body["id"] for r in results] == users
    batch_rounds = [
        (json.loads(content), answer)
        for (_, path, content), (_, _, status, answer) in zip(wire.sent, wire.answers, strict=True)
        if path.endswith("/$batch") and status == 200
    ]
    assert len(batch_rounds) >= 2, "the fault seed should throttle some items"
    for (_, answer), (next_request, _) in itertools.pairwise(batch_rounds):
        throttled = sorted(item["id"] for item in answer["responses"] if item["status"] == 429)
        assert sorted(item["id"] for item in next_request["requests"]) == throttled


async def test_unavailable_and_dropped_connections_are_retried(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    client = make_client(policy=RetryPolicy(max_attempts=10, max_total_wait=10.0, backoff_base=0.01))
    await client.get("/groups", params={"$top": "1"})
    emu.set_faults(rate_503=0.1, rate_504=0.1, drop_rate=0.1, seed_random=5)
    responses = [await client.get("/groups", params={"$top": "1"}) for _ in range(30)]
    assert [r.status for r in responses] == [200] * 30
    requests_seen = sum(n for key, n in emu.stats()["requests"].items() if key.startswith("GET /v1.0/groups"))
    assert requests_seen > 30  # some answers were faults and were sent again


async def test_retries_stop_at_the_attempt_budget_and_say_so(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    client = make_client(policy=RetryPolicy(max_attempts=3, max_total_wait=5.0, backoff_base=0.01))
    await client.get("/groups", params={"$top": "1"})
    emu.reset_stats()
    emu.set_faults(rate_503=1.0)
    with pytest.raises(GraphTransient) as caught:
        await client.get("/groups", params={"$top": "1"})
    assert caught.value.attempts == 3
    assert "Gave up after 3 attempts" in str(caught.value)
    assert emu.stats()["requests"].get("GET /v1.0/groups") == 3


async def test_a_retry_after_beyond_the_wait_budget_fails_at_once(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    client = make_client(policy=RetryPolicy(max_attempts=6, max_total_wait=3.0))
    await client.get("/groups", params={"$top": "1"})
    emu.set_faults(rate_429=1.0, retry_after_seconds=30)
    started = time.monotonic()
    with pytest.raises(GraphThrottled) as caught:
        await client.get("/groups", params={"$top": "1"})
    assert time.monotonic() - started < 2.0
    assert caught.value.retry_after == 30
    assert "30 s" in (caught.value.action or "")


async def test_paging_ten_thousand_members_takes_eleven_requests(emu: Any, graph: GraphClient) -> None:
    users = [user["id"] async for user in graph.paginate("/users", params={"$top": "999", "$select": "id"})]
    members = users[:10_000]
    assert len(members) == 10_000
    group_id = _new_group(emu, members)
    emu.reset_stats()
    seen = [
        item["id"] async for item in graph.paginate(f"/groups/{group_id}/members", params={"$top": "999"})
    ]
    assert sorted(seen) == sorted(members)
    assert emu.stats()["requests"]["GET /v1.0/groups/{id}/members"] == 11
    assert await graph.count(f"/groups/{group_id}/members") == 10_000


async def test_batch_of_45_is_sent_in_3_envelopes_with_results_in_order(emu: Any, graph: GraphClient) -> None:
    users = [_new_user(emu) for _ in range(44)]
    missing = str(uuid.uuid4())
    requests = [BatchRequest("GET", f"/users/{u}") for u in users[:30]]
    requests.append(BatchRequest("GET", f"/users/{missing}"))
    requests += [BatchRequest("GET", f"/users/{u}") for u in users[30:]]
    await graph.get("/groups", params={"$top": "1"})
    emu.reset_stats()
    results = await graph.batch(requests)
    stats = emu.stats()
    assert stats["requests"]["POST /v1.0/$batch"] == 3
    assert stats["batch_subrequests"] == 45
    assert [r.body["id"] for r in results if r.ok] == users
    assert isinstance(results[30].error, GraphNotFound)


async def test_batch_depends_on_runs_in_order(emu: Any, graph: GraphClient, instant_consistency: Any) -> None:
    group_id = _new_group(emu)
    user_id = _new_user(emu)
    odata_id = f"https://graph.microsoft.com/v1.0/directoryObjects/{user_id}"
    results = await graph.batch(
        [
            BatchRequest("POST", f"/groups/{group_id}/members/$ref", body={"@odata.id": odata_id}, id="add"),
            BatchRequest("GET", f"/groups/{group_id}/members", id="list", depends_on=["add"]),
        ]
    )
    assert results[0].status == 204
    assert [m["id"] for m in results[1].body["value"]] == [user_id]


async def test_dry_run_sends_no_write_and_returns_what_it_would_send(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    group_id = _new_group(emu)
    user_id = _new_user(emu)
    client = make_client(dry_run=True)
    odata_id = f"https://graph.microsoft.com/v1.0/directoryObjects/{user_id}"
    emu.reset_stats()
    response = await client.post(f"/groups/{group_id}/members/$ref", json={"@odata.id": odata_id})
    await client.delete(f"/groups/{group_id}/members/{user_id}/$ref")
    results = await client.batch(
        [
            BatchRequest("PATCH", f"/groups/{group_id}", body={"description": "changed"}),
            BatchRequest("GET", f"/groups/{group_id}"),
        ]
    )
    assert emu.stats()["writes"] == 0
    assert emu.group_members(group_id) == []
    assert response.dry_run and response.json()["body"] == {"@odata.id": odata_id}
    assert [(w.method, w.url.rsplit("/v1.0", 1)[1], w.body) for w in client.recorded_writes] == [
        ("POST", f"/groups/{group_id}/members/$ref", {"@odata.id": odata_id}),
        ("DELETE", f"/groups/{group_id}/members/{user_id}/$ref", None),
        ("PATCH", f"/groups/{group_id}", {"description": "changed"}),
    ]
    assert results[1].status == 200 and results[1].body["id"] == group_id  # reads still go through


async def test_tokens_never_travel_to_another_host(graph: GraphClient) -> None:
    with pytest.raises(ValueError, match="refusing"):
        await graph.get("https://attacker.example/v1.0/groups")


async def test_secrets_and_tokens_stay_out_of_logs_errors_and_metrics(
    emu: Any, make_client: Callable[..., GraphClient], caplog: pytest.LogCaptureFixture
) -> None:
    canary = "canary-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    broken = make_client(client_secret=canary)
    with pytest.raises(GraphAuthenticationFailed) as caught:
        await broken.get("/groups")
    working = make_client()
    await working.get("/groups", params={"$top": "1"})
    access_token = await working.tokens.get_token()
    emu.set_faults(rate_503=1.0)
    with pytest.raises(GraphError) as failed_call:
        await working.get("/groups", params={"$top": "1"})
    exposed = "\n".join(
        [
            caplog.text,
            "\n".join(str(record.args) for record in caplog.records),
            str(caught.value),
            repr(caught.value),
            str(failed_call.value),
            repr(failed_call.value),
            repr(broken),
            repr(broken.tokens),
            repr(working),
            repr(working.tokens),
            generate_latest(REGISTRY).decode(),
        ]
    )
    for secret in (canary, access_token):
        assert secret not in exposed


async def test_batch_items_that_reject_the_token_get_one_refresh_and_one_retry_of_just_them(
    emu: Any, graph: GraphClient
) -> None:
    users = [_new_user(emu) for _ in range(3)]
    await graph.get("/groups", params={"$top": "1"})  # a token in hand
    emu.reset_stats()
    emu.set_batch_item_faults({"method": "GET", "path": "/users/", "status": 401, "times": 2})
    try:
        results = await graph.batch([BatchRequest("GET", f"/users/{u}") for u in users])
        assert [r.status for r in results] == [200, 200, 200]
        stats = emu.stats()
        assert stats["token_requests"] == 1  # one refresh for both rejected items
        assert stats["requests"]["POST /v1.0/$batch"] == 2
        assert stats["batch_subrequests"] == 3 + 2  # the second envelope carries only the two rejected items

        # Rejected again after the refresh: the answer stands (one refresh per call, not a loop).
        emu.reset_stats()
        emu.set_batch_item_faults({"method": "GET", "path": "/users/", "status": 401, "times": 10})
        again = await graph.batch([BatchRequest("GET", f"/users/{users[0]}")])
        assert again[0].status == 401 and isinstance(again[0].error, GraphAuthenticationFailed)
        assert emu.stats()["requests"]["POST /v1.0/$batch"] == 2
    finally:
        emu.set_batch_item_faults()
