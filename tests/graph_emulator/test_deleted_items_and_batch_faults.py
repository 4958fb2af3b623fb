"""Deleted items (30 days for Microsoft 365 groups, restorable with their members; security groups gone at once) and
faults aimed at chosen $batch items."""

from __future__ import annotations

from typing import Any

from emulator_helpers import Graph, fetch_token

from emulator_support import seed_group_id as gid
from graph_emulator import seeds


def member_ids(graph: Graph, group_id: str) -> set[str]:
    response = graph.get(f"/groups/{group_id}/members", params={"$select": "id", "$top": "999"})
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["value"]}


def test_a_deleted_microsoft_365_group_waits_in_deleted_items_and_comes_back_with_its_members(
    graph: Graph, emu: Any
) -> None:
    group_id = gid("marketing")
    members = member_ids(graph, group_id)
    assert members
    assert graph.delete(f"/groups/{group_id}").status_code == 204
    assert graph.get(f"/groups/{group_id}").status_code == 404

    deleted = graph.get(f"/directory/deletedItems/{group_id}")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["id"] == group_id and body["@odata.type"] == "#microsoft.graph.group"
    assert body["deletedDateTime"] and body["groupTypes"] == ["Unified"]
    listed = graph.get("/directory/deletedItems/microsoft.graph.group").json()["value"]
    assert [g["id"] for g in listed] == [group_id]

    restored = graph.post(f"/directory/deletedItems/{group_id}/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["deletedDateTime"] is None
    assert graph.get(f"/groups/{group_id}").status_code == 200
    assert member_ids(graph, group_id) == members
    assert graph.get(f"/directory/deletedItems/{group_id}").status_code == 404


def test_a_security_group_is_deleted_for_good_and_cannot_be_restored(graph: Graph, emu: Any) -> None:
    group_id = gid("security")
    emu.delete_group_behind_app(group_id)
    assert graph.get(f"/directory/deletedItems/{group_id}").status_code == 404
    assert graph.post(f"/directory/deletedItems/{group_id}/restore").status_code == 404


def test_deleted_items_are_kept_30_days_then_gone_for_good(graph: Graph, emu: Any) -> None:
    group_id = gid("engineering")
    emu.delete_group_behind_app(group_id)
    emu.age_deleted_item(group_id, 29.9)
    assert graph.get(f"/directory/deletedItems/{group_id}").status_code == 200
    emu.age_deleted_item(group_id, 0.2)
    assert graph.get(f"/directory/deletedItems/{group_id}").status_code == 404
    assert emu.deleted_items() == []


def test_reading_deleted_items_takes_group_read_and_restoring_takes_group_readwrite(
    graph: Graph, emu: Any
) -> None:
    group_id = gid("marketing")
    emu.delete_group_behind_app(group_id)
    emu.set_app_roles(seeds.DEFAULT_CLIENT_ID, ["Group.Read.All", "GroupMember.ReadWrite.All"])
    reader = Graph(emu, fetch_token(emu))
    try:
        assert reader.get(f"/directory/deletedItems/{group_id}").status_code == 200
        denied = reader.post(f"/directory/deletedItems/{group_id}/restore")
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    finally:
        reader.http.close()


def test_chosen_batch_items_fail_the_given_number_of_times(graph: Graph, emu: Any) -> None:
    emu.set_batch_item_faults({"method": "GET", "path": "/groups/", "status": 401, "times": 2})
    requests = [{"id": str(i), "method": "GET", "url": f"/groups/{gid('marketing')}"} for i in range(3)]
    answered = graph.post("/$batch", json={"requests": requests}).json()["responses"]
    statuses = {r["id"]: r["status"] for r in answered}
    assert sorted(statuses.values()) == [200, 401, 401]
    failed = next(r for r in answered if r["status"] == 401)
    assert failed["body"]["error"]["code"] == "InvalidAuthenticationToken"
    assert emu.batch_item_faults()["injected"] == 2
    again = graph.post("/$batch", json={"requests": requests}).json()["responses"]
    assert {r["status"] for r in again} == {200}
    # A plain request is never hit: only $batch items are.
    emu.set_batch_item_faults({"status": 503, "times": 5})
    assert graph.get(f"/groups/{gid('marketing')}").status_code == 200
