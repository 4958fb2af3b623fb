"""$batch rules, throttling headers, delta rounds, injected faults, stats and the command line."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from emulator_helpers import error_of

from graph_emulator import seeds

DOMAIN = seeds.DEFAULT_TENANT_DOMAIN


def gid(key: str) -> str:
    return seeds.stable_id(DOMAIN, "seed-group", key)


def batch(graph, requests: list[dict]) -> httpx.Response:
    return graph.post("/$batch", json={"requests": requests})


def test_batch_answers_every_item_in_shuffled_order(graph):
    items = [
        {"id": str(i), "method": "GET", "url": f"/groups/{gid('all-company')}/members?$top=1"}
        for i in range(20)
    ]
    orders = set()
    for _ in range(5):
        response = batch(graph, items)
        assert response.status_code == 200
        answers = response.json()["responses"]
        assert sorted(int(a["id"]) for a in answers) == list(range(20))
        assert all(a["status"] == 200 and a["headers"]["x-ms-resource-unit"] for a in answers)
        orders.add(tuple(a["id"] for a in answers))
    assert len(orders) > 1


def test_batch_limits_and_unique_ids(graph):
    items = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(21)]
    assert batch(graph, items).status_code == 400
    duplicate = batch(graph, [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET",
                                                                                "url": "/groups"}])  # fmt: skip
    assert duplicate.status_code == 400 and error_of(duplicate)["code"] == "BadRequest"
    no_type = batch(graph, [{"id": "1", "method": "POST", "url": "/groups", "body": {"displayName": "x"}}])
    assert no_type.status_code == 400


def test_batch_item_errors_and_depends_on_424(graph):
    response = batch(graph, [
        {"id": "1", "method": "GET", "url": "/groups/00000000-0000-0000-0000-000000000000"},
        {"id": "2", "method": "GET", "url": "/users?$top=1", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": "/users?$top=1"},
        {"id": "4", "method": "DELETE", "url": f"/groups/{gid('marketing')}/members/"
                                               f"{seeds.stable_id(DOMAIN, 'user', '999')}/$ref"},
    ])  # fmt: skip
    answers = {a["id"]: a for a in response.json()["responses"]}
    assert answers["1"]["status"] == 404
    assert answers["1"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert answers["2"]["status"] == 424
    assert answers["3"]["status"] == 200
    assert answers["4"]["status"] == 404


def test_batch_writes_apply_and_count(graph, emu):
    group = gid("marketing")
    member = emu.group_members(group)[0]
    emu.reset_stats()
    response = batch(
        graph, [{"id": "a", "method": "DELETE", "url": f"/groups/{group}/members/{member}/$ref"}]
    )
    assert response.json()["responses"][0]["status"] == 204
    assert member not in emu.group_members(group)
    stats = emu.stats()
    assert stats["graph_requests"] == 1 and stats["batch_subrequests"] == 1 and stats["writes"] == 1
    assert stats["requests"]["DELETE /v1.0/groups/{id}/members/{member}/$ref"] == 1


def test_injected_429_on_batch_items_carries_retry_after(graph, emu):
    emu.set_faults(rate_429=1.0, retry_after_seconds=7, seed_random=1)
    response = graph.post("/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/users"}]})
    # The envelope itself may be throttled too; with rate 1.0 it is.
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    emu.set_faults(rate_429=0.5, retry_after_seconds=3, seed_random=4)
    throttled_items = 0
    for _ in range(10):
        answer = graph.post("/$batch", json={"requests": [{"id": str(i), "method": "GET", "url": "/users"}
                                                          for i in range(10)]})  # fmt: skip
        if answer.status_code != 200:
            continue
        for item in answer.json()["responses"]:
            if item["status"] == 429:
                throttled_items += 1
                assert item["headers"]["Retry-After"] == "3"
                assert item["body"]["error"]["code"] == "TooManyRequests"
    assert throttled_items > 0
    assert emu.stats()["throttled"] >= throttled_items


def test_token_bucket_throttles_with_documented_headers(graph, emu):
    group = gid("all-company")
    items = [{"id": str(i), "method": "GET", "url": f"/groups/{group}/members"} for i in range(20)]
    saw_warning = False
    throttled = None
    # 3,500 RU per 10 s for a small tenant (it refills 350 RU a second); each batch of 20 items costs 60 RU. About
    # 70 batches empty the bucket on an idle machine; a busy one answers more slowly and needs more of them.
    for _ in range(400):
        response = batch(graph, items)
        for item in response.json()["responses"]:
            if "x-ms-throttle-limit-percentage" in item["headers"]:
                saw_warning = True
            if item["status"] == 429:
                throttled = item
        if throttled:
            break
    assert saw_warning and throttled is not None
    assert int(throttled["headers"]["Retry-After"]) >= 1
    assert throttled["headers"]["x-ms-throttle-scope"] == (
        f"Tenant_Application/ReadWrite/{emu.client_id}/{emu.tenant_id}"
    )
    assert throttled["headers"]["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert throttled["body"]["error"]["message"] == "Please retry again later."
    # The bucket refills continuously, so a direct request is throttled once the refill is used up again. Each
    # batch uses up what refilled meanwhile, however slowly this machine answers; the request right after it
    # finds the bucket empty (single direct requests alone can be slower than the refill on a busy machine).
    direct = None
    for _ in range(400):
        batch(graph, items)
        answer = graph.get(f"/groups/{group}/members")
        if answer.status_code == 429:
            direct = answer
            break
    assert direct is not None, "no direct request was throttled"
    assert error_of(direct)["code"] == "TooManyRequests" and int(direct.headers["Retry-After"]) >= 1


def test_delta_first_round_then_only_changes(graph, emu):
    group = gid("marketing")
    first = graph.get(
        "/groups/delta", params={"$select": "displayName,members", "$filter": f"id eq '{group}'"}
    )
    body = first.json()
    assert "@odata.deltaLink" in body and len(body["value"]) == 1
    entry = body["value"][0]
    assert entry["id"] == group and entry["displayName"] == "Marketing"
    assert sorted(m["id"] for m in entry["members@delta"]) == sorted(emu.group_members(group))
    assert entry["members@delta"][0]["@odata.type"] == "#microsoft.graph.user"
    delta_link = body["@odata.deltaLink"]
    quiet = graph.get(delta_link).json()
    assert quiet["value"] == [] and "@odata.deltaLink" in quiet
    removed = emu.group_members(group)[0]
    added = next(u for u in emu.group_members(gid("all-company")) if u not in emu.group_members(group))
    graph.delete(f"/groups/{group}/members/{removed}/$ref")
    graph.post(f"/groups/{group}/members/$ref",
               json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{added}"})  # fmt: skip
    emu.replicate_now()  # delta has processing delays too
    changes = graph.get(quiet["@odata.deltaLink"]).json()["value"]
    assert len(changes) == 1
    by_id = {m["id"]: m for m in changes[0]["members@delta"]}
    assert by_id[removed]["@removed"] == {"reason": "deleted"}
    assert "@removed" not in by_id[added]


def test_delta_pages_with_next_link(graph, emu):
    for index in range(120):
        emu.add_group(displayName=f"Bulk {index}", mailNickname=f"bulk-{index}", groupTypes=[],
                           mailEnabled=False, securityEnabled=True)  # fmt: skip
    response = graph.get("/groups/delta", params={"$select": "displayName"}).json()
    assert "@odata.nextLink" in response and "@odata.deltaLink" not in response
    following = graph.get(response["@odata.nextLink"]).json()
    assert "@odata.deltaLink" in following
    assert len(response["value"]) + len(following["value"]) == 120 + len(
        seeds.default_seed()["tenants"][0]["groups"]
    )


def test_latency_and_503_faults(graph, emu):
    emu.set_faults(latency_ms=150)
    started = time.monotonic()
    assert graph.get("/users?$top=1").status_code == 200
    assert time.monotonic() - started >= 0.15
    emu.set_faults(rate_503=1.0)
    response = graph.get("/users?$top=1")
    assert response.status_code == 503 and error_of(response)["code"]
    assert emu.stats()["faults_injected"]["503"] == 1


def test_dropped_connections(graph, emu):
    emu.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        graph.get("/users?$top=1")
    emu.set_faults()
    assert graph.get("/users?$top=1").status_code == 200


def test_a_lost_answer_means_the_change_was_made(graph, emu):
    """drop_rate refuses before doing anything; lost_response_rate does the work and then hangs up."""
    body = {"displayName": "Lost answer", "mailNickname": "lost-answer", "mailEnabled": True,
            "securityEnabled": True, "groupTypes": ["Unified"]}  # fmt: skip
    emu.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        graph.post("/groups", json=body)
    emu.set_faults(lost_response_rate=1.0)
    with pytest.raises(httpx.TransportError):
        graph.post("/groups", json=body)
    emu.set_faults()
    emu.replicate_now()
    found = graph.get("/groups?$filter=mailNickname eq 'lost-answer'").json()["value"]
    assert len(found) == 1  # made once: by the second request only, whose answer never arrived
    assert emu.stats()["faults_injected"]["lost_response"] == 1


def test_controls_refuse_unknown_fault_settings(emu):
    with pytest.raises(RuntimeError):
        emu.set_faults(rate_999=1)


def test_command_line_prints_the_base_url(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "graph_emulator", "--port", "0", "--data-dir", str(tmp_path),
                                "--users", "60", "--groups", "5"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert line.startswith("https://127.0.0.1:")
        assert (tmp_path / "ca.pem").exists()
        import ssl

        with httpx.Client(
            verify=ssl.create_default_context(cafile=str(tmp_path / "ca.pem")), trust_env=False
        ) as c:
            for _ in range(50):
                try:
                    info = c.get(f"{line}/_emulator/info").json()
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
        assert info["tenants"][0]["users"] == 60 and info["tenants"][0]["size"] == "M"
    finally:
        process.terminate()
        process.wait(10)
