"""Scale: a generated fleet of tenants, delta over 50 groups at a time, and delta tokens that expire."""

from __future__ import annotations

import httpx
import pytest
from emulator_helpers import GRAPH_SCOPE, Graph, error_of, http_client

from graph_emulator.fleet import USERS_BY_SIZE, fit_sizes
from graph_emulator.testing import RunningEmulator

OPEN: list[Graph] = []


@pytest.fixture(autouse=True)
def close_clients():
    """Graph clients opened by a test are closed after it (an open connection would hold the server's stop)."""
    yield
    while OPEN:
        OPEN.pop().http.close()


def tenant_graph(emu: RunningEmulator, tenant_id: str) -> Graph:
    with http_client(emu) as http:
        response = http.post(
            f"{emu.base_url}/{tenant_id}/oauth2/v2.0/token",
            data={"client_id": emu.client_id, "client_secret": emu.client_secret, "scope": GRAPH_SCOPE,
                  "grant_type": "client_credentials"},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    graph = Graph(emu, response.json()["access_token"])
    OPEN.append(graph)
    return graph


def delta_filter(group_ids: list[str]) -> str:
    return " or ".join(f"id eq '{group_id}'" for group_id in group_ids)


def whole_round(graph: Graph, first: httpx.Response) -> tuple[list[dict], str, int]:
    """Every entry of a delta round, its deltaLink and how many pages it took."""
    assert first.status_code == 200, first.text
    body, entries, pages = first.json(), [], 1
    entries.extend(body["value"])
    while "@odata.nextLink" in body:
        body = graph.get(body["@odata.nextLink"]).json()
        entries.extend(body["value"])
        pages += 1
    return entries, body["@odata.deltaLink"], pages


def members_by_group(entries: list[dict]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for entry in entries:
        found.setdefault(entry["id"], set()).update(
            m["id"] for m in entry.get("members@delta", []) if "@removed" not in m
        )
    return found


# ---- the fleet ---------------------------------------------------------------------------------------------


def test_fleet_has_tenants_of_every_size_and_exactly_the_memberships_asked_for(emu):
    layout = emu.load_fleet(tenants=20, groups=200, memberships=20_000)
    tenants = layout["tenants"]
    assert len(tenants) == 20 and {t["size"] for t in tenants} == {"S", "M", "L"}
    groups = [group for tenant in tenants for group in tenant["groups"]]
    assert len(groups) == 200 and layout["memberships"] == 20_000
    assert sum(group["members"] for group in groups) == 20_000
    for tenant in tenants:
        assert tenant["users"] == USERS_BY_SIZE[tenant["size"]]
        assert all(5 <= g["members"] <= min(2000, tenant["users"]) for g in tenant["groups"])
    assert emu.load_fleet(tenants=20, groups=200, memberships=20_000)["tenants"] == tenants  # deterministic
    # The app is consented everywhere; Graph serves each tenant's groups with their members.
    for tenant in (tenants[0], tenants[-1]):
        graph = tenant_graph(emu, tenant["id"])
        group = tenant["groups"][-1]
        members = graph.get(f"/groups/{group['id']}/members", params={"$select": "id", "$top": "999"}).json()
        listed = len(members["value"])
        while "@odata.nextLink" in members:
            members = graph.get(members["@odata.nextLink"]).json()
            listed += len(members["value"])
        assert listed == group["members"]
        assert len(graph.get("/groups", params={"$top": "999"}).json()["value"]) == len(tenant["groups"])


def test_group_sizes_fit_their_bounds_and_total():
    sizes = fit_sizes([1.0, 50.0, 400.0, 3000.0], [5, 5, 5, 5], [40, 400, 400, 2000], 1234)
    assert sum(sizes) == 1234 and all(5 <= s <= h for s, h in zip(sizes, [40, 400, 400, 2000], strict=True))
    with pytest.raises(ValueError, match="cannot fit"):
        fit_sizes([1.0], [5], [40], 41)


# ---- delta over many groups --------------------------------------------------------------------------------


@pytest.fixture
def large_tenant(emu):
    """A fleet whose large tenant holds 98 groups of up to 2,000 members; answers (tenant, graph)."""
    layout = emu.load_fleet(tenants=4, groups=200, memberships=120_000)
    emu.set_lag(0)  # read-your-writes: the changes below come in the next round at once
    tenant = next(t for t in layout["tenants"] if t["size"] == "L")
    return tenant, tenant_graph(emu, tenant["id"])


def test_delta_over_50_groups_pages_then_reports_only_what_changed(emu, large_tenant):
    tenant, graph = large_tenant
    picked = [g["id"] for g in tenant["groups"][:50]]
    first = graph.get("/groups/delta", params={"$select": "members", "$filter": delta_filter(picked)})
    entries, delta_link, pages = whole_round(graph, first)
    assert pages > 1  # large groups span several entries, 100 entries a page
    members = members_by_group(entries)
    assert set(members) == set(picked)
    sizes = {g["id"]: g["members"] for g in tenant["groups"]}
    assert all(len(members[group_id]) == sizes[group_id] for group_id in picked)

    quiet = graph.get(delta_link).json()
    assert quiet["value"] == [] and "@odata.deltaLink" in quiet

    left, joined, elsewhere = picked[3], picked[40], tenant["groups"][60]["id"]
    leaving = sorted(members[left])[0]
    joining = next(m for m in sorted(members[left]) if m not in members[joined])
    assert graph.delete(f"/groups/{left}/members/{leaving}/$ref").status_code == 204
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{joining}"}
    assert graph.post(f"/groups/{joined}/members/$ref", json=ref).status_code == 204
    assert graph.post(f"/groups/{elsewhere}/members/$ref", json=ref).status_code in (204, 400)
    changes, _, _ = whole_round(graph, graph.get(quiet["@odata.deltaLink"]))
    assert {entry["id"]: entry["members@delta"] for entry in changes} == {
        left: [{"@odata.type": "#microsoft.graph.user", "id": leaving, "@removed": {"reason": "deleted"}}],
        joined: [{"@odata.type": "#microsoft.graph.user", "id": joining}],
    }


def test_more_than_50_ids_in_a_delta_filter_is_refused(large_tenant):
    tenant, graph = large_tenant
    response = graph.get(
        "/groups/delta",
        params={"$select": "members", "$filter": delta_filter([g["id"] for g in tenant["groups"][:51]])},
    )
    assert response.status_code == 400
    assert "maximum of 50" in error_of(response)["message"]


def test_a_round_in_progress_survives_the_emulator_forgetting_it(emu, large_tenant):
    tenant, graph = large_tenant
    picked = [g["id"] for g in tenant["groups"][50:]]
    first = graph.get("/groups/delta", params={"$select": "members", "$filter": delta_filter(picked)})
    assert "@odata.nextLink" in first.json()
    emu.emulator.delta_rounds.clear()  # as when many rounds run at once and the oldest is evicted
    entries, _, _ = whole_round(graph, first)
    sizes = {g["id"]: g["members"] for g in tenant["groups"]}
    assert {k: len(v) for k, v in members_by_group(entries).items()} == {g: sizes[g] for g in picked}


# ---- delta tokens expire -----------------------------------------------------------------------------------


def first_delta_link(graph: Graph, group_ids: list[str]) -> str:
    response = graph.get("/groups/delta", params={"$select": "members", "$filter": delta_filter(group_ids)})
    return whole_round(graph, response)[1]


def test_expired_delta_links_answer_sync_state_not_found_until_a_full_round(emu):
    layout = emu.load_fleet(tenants=3, groups=30, memberships=1_500)
    (first, second, _) = layout["tenants"]
    graph_a, graph_b = tenant_graph(emu, first["id"]), tenant_graph(emu, second["id"])
    ids_a, ids_b = [g["id"] for g in first["groups"]], [g["id"] for g in second["groups"]]
    link_a, link_b = first_delta_link(graph_a, ids_a), first_delta_link(graph_b, ids_b)

    emu.expire_delta_tokens(first["id"])
    expired = graph_a.get(link_a)
    assert expired.status_code == 400
    error = error_of(expired)
    assert error["code"] == "syncStateNotFound"
    assert error["message"] == (
        "The sync state generation is not found. The delta token is expired and data must be synchronized again."
    )
    assert graph_b.get(link_b).status_code == 200  # another tenant's tokens live on
    fresh = first_delta_link(graph_a, ids_a)  # a full round gives a link that works
    assert graph_a.get(fresh).json()["value"] == []

    emu.expire_delta_tokens(status=410)  # every tenant, answered 410 Gone
    assert graph_a.get(fresh).status_code == 410 and graph_b.get(link_b).status_code == 410
    assert emu.delta_tokens()["expired_answers"] == 3


def test_delta_links_expire_after_their_lifetime(emu):
    layout = emu.load_fleet(tenants=2, groups=10, memberships=200)
    tenant = layout["tenants"][0]
    graph = tenant_graph(emu, tenant["id"])
    link = first_delta_link(graph, [g["id"] for g in tenant["groups"]])
    assert emu.delta_tokens()["lifetime_seconds"] == 7 * 24 * 3600
    assert graph.get(link).status_code == 200
    emu.set_delta_lifetime(0)
    assert error_of(graph.get(link))["code"] == "syncStateNotFound"


def test_a_delta_link_of_another_tenant_is_refused(emu):
    layout = emu.load_fleet(tenants=2, groups=10, memberships=200)
    first, second = layout["tenants"]
    link = first_delta_link(tenant_graph(emu, first["id"]), [g["id"] for g in first["groups"]])
    assert tenant_graph(emu, second["id"]).get(link).status_code == 400


def test_the_per_group_change_index_follows_the_change_log_even_when_written_directly():
    from graph_emulator.state import ChangeEvent, Tenant

    tenant = Tenant(id="t", domain="t.example", size="S", display_name="T")
    tenant.record("g1", "add", "u1")
    tenant.changes.append(ChangeEvent(tenant.next_seq, "g2", "add", "u2"))  # not through record()
    tenant.next_seq += 1
    tenant.record("g1", "remove", "u1")
    assert [e.seq for e in tenant.group_events("g1")] == [1, 3]
    assert [e.seq for e in tenant.group_events("g2")] == [2]


def test_one_tenant_throttled_hard_leaves_the_others_alone(emu):
    layout = emu.load_fleet(tenants=3, groups=9, memberships=150)
    busy, calm = (tenant_graph(emu, t["id"]) for t in layout["tenants"][:2])
    emu.throttle_tenant(layout["tenants"][0]["id"], rate_429=1.0, retry_after_seconds=2)
    refused = busy.get("/groups")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
    assert refused.headers["x-ms-throttle-scope"].endswith(f"/{layout['tenants'][0]['id']}")
    assert error_of(refused)["code"] == "TooManyRequests"
    assert calm.get("/groups").status_code == 200
    emu.throttle_tenant(layout["tenants"][0]["id"], rate_429=0)
    assert busy.get("/groups").status_code == 200
