"""Eventual consistency by default: Graph writes are read back, counted and searched only after the lag."""

from __future__ import annotations

import time

import pytest

from graph_emulator import seeds

DOMAIN = seeds.DEFAULT_TENANT_DOMAIN
FALCON = seeds.stable_id(DOMAIN, "seed-group", "empty-team")
EVENTUAL = {"ConsistencyLevel": "eventual"}
NEW_GROUP = {
    "displayName": "Fresh Team",
    "mailEnabled": False,
    "mailNickname": "fresh-team",
    "securityEnabled": True,
}


@pytest.fixture
def slow_replication(emu):
    """A lag long enough that a busy machine cannot outrun it; replicate_now() ends it."""
    emu.set_lag(30)
    return emu


def member_user() -> str:
    return next(u["id"] for u in seeds.default_seed()["tenants"][0]["users"] if u["userType"] == "Member")


def test_the_default_profile_lags_one_second_scaled_by_time_scale(emu):
    state = emu.control.consistency()
    assert state["lag_seconds"] == 1.0
    assert state["effective_lag_seconds"] == 1.0 / state["time_scale"]


def test_a_new_group_is_not_read_counted_or_searched_until_it_replicates(graph, emu, slow_replication):
    before = int(graph.get("/groups/$count", headers=EVENTUAL).text)
    created = graph.post("/groups", json=NEW_GROUP)
    assert created.status_code == 201
    group_id = created.json()["id"]
    assert graph.get(f"/groups/{group_id}").status_code == 404
    assert int(graph.get("/groups/$count", headers=EVENTUAL).text) == before
    searched = graph.get(
        "/groups", params={"$search": '"displayName:Fresh"', "$count": "true"}, headers=EVENTUAL
    )
    assert searched.json()["value"] == []
    emu.replicate_now()
    assert graph.get(f"/groups/{group_id}").json()["displayName"] == "Fresh Team"
    assert int(graph.get("/groups/$count", headers=EVENTUAL).text) == before + 1
    searched = graph.get(
        "/groups", params={"$search": '"displayName:Fresh"', "$count": "true"}, headers=EVENTUAL
    )
    assert [g["id"] for g in searched.json()["value"]] == [group_id]


def test_a_change_is_read_back_after_the_lag(graph, emu):
    assert graph.patch(f"/groups/{FALCON}", json={"displayName": "Falcon Renamed"}).status_code == 204
    started = time.monotonic()
    assert graph.get(f"/groups/{FALCON}").json()["displayName"] == "Project Falcon"
    lagged = graph.get("/groups", params={"$filter": "displayName eq 'Falcon Renamed'"}).json()["value"]
    assert lagged == []
    while graph.get(f"/groups/{FALCON}").json()["displayName"] != "Falcon Renamed":
        assert time.monotonic() - started < 5, "the change never replicated"
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.5


def test_members_and_member_counts_lag_until_replicate_now(graph, emu, slow_replication):
    user = member_user()
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user}"}
    assert graph.post(f"/groups/{FALCON}/members/$ref", json=ref).status_code == 204
    assert graph.get(f"/groups/{FALCON}/members").json()["value"] == []
    assert graph.get(f"/groups/{FALCON}/members/$ref").json()["value"] == []
    assert graph.get(f"/groups/{FALCON}/members/microsoft.graph.user").json()["value"] == []
    assert graph.get(f"/groups/{FALCON}/members/$count", headers=EVENTUAL).text == "0"
    # The write side already knows: adding again is refused at once.
    assert graph.post(f"/groups/{FALCON}/members/$ref", json=ref).status_code == 400
    emu.replicate_now()
    assert [m["id"] for m in graph.get(f"/groups/{FALCON}/members").json()["value"]] == [user]
    refs = graph.get(f"/groups/{FALCON}/members/$ref").json()["value"]
    assert [r["@odata.id"].split("/directoryObjects/")[1].split("/")[0] for r in refs] == [user]
    assert graph.get(f"/groups/{FALCON}/members/$count", headers=EVENTUAL).text == "1"


def test_a_test_can_ask_for_instant_consistency(graph, emu):
    emu.set_lag(0)
    created = graph.post("/groups", json=NEW_GROUP)
    assert graph.get(f"/groups/{created.json()['id']}").status_code == 200
    emu.reset()
    assert emu.control.consistency()["lag_seconds"] == 1.0


def test_control_api_set_up_is_already_replicated(graph, emu):
    group = emu.add_group(
        displayName="Set up", mailNickname="set-up", mailEnabled=False, securityEnabled=True
    )
    assert graph.get(f"/groups/{group['id']}").status_code == 200


def test_delta_brings_a_change_in_the_round_after_it_replicates(graph, emu, slow_replication):
    first = graph.get("/groups/delta", params={"$select": "displayName"}).json()
    while "@odata.nextLink" in first:
        first = graph.get(first["@odata.nextLink"]).json()
    assert graph.patch(f"/groups/{FALCON}", json={"displayName": "Falcon Delta"}).status_code == 204
    created = graph.post("/groups", json=NEW_GROUP).json()
    early = graph.get(first["@odata.deltaLink"]).json()
    assert early["value"] == []  # still processing
    emu.replicate_now()
    later = graph.get(early["@odata.deltaLink"]).json()
    assert {(g["id"], g["displayName"]) for g in later["value"]} == {
        (FALCON, "Falcon Delta"),
        (created["id"], "Fresh Team"),
    }
    assert graph.get(later["@odata.deltaLink"]).json()["value"] == []


def test_a_user_created_through_graph_is_found_after_it_replicates(graph, emu, slow_replication):
    emu.set_app_roles(emu.client_id, [*seeds.APP_ROLES, "User.ReadWrite.All"])
    from emulator_helpers import Graph, fetch_token

    writer = Graph(emu, fetch_token(emu))
    before = int(writer.get("/users/$count", headers=EVENTUAL).text)
    body = {
        "accountEnabled": True,
        "displayName": "New Hire",
        "mailNickname": "new.hire",
        "userPrincipalName": f"new.hire@{DOMAIN}",
        "passwordProfile": {"password": "x-Unused-1", "forceChangePasswordNextSignIn": True},
    }
    created = writer.post("/users", json=body)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert writer.get(f"/users/{user_id}").status_code == 404
    assert writer.get(f"/users/new.hire@{DOMAIN}").status_code == 404
    assert int(writer.get("/users/$count", headers=EVENTUAL).text) == before
    emu.replicate_now()
    assert writer.get(f"/users/{user_id}").json()["displayName"] == "New Hire"
    assert int(writer.get("/users/$count", headers=EVENTUAL).text) == before + 1
