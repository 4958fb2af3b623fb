"""Graph groups, members and users against the documented examples and the reference rules."""

from __future__ import annotations

import time
import uuid

import pytest
from emulator_helpers import error_of

from graph_emulator import seeds

DOMAIN = seeds.DEFAULT_TENANT_DOMAIN


def gid(key: str) -> str:
    return seeds.stable_id(DOMAIN, "seed-group", key)


def user_ids(graph, **query) -> list[dict]:
    return graph.get("/users", params={"$top": "999", **query}).json()["value"]


def ref(object_id: str) -> str:
    return f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"


def non_members(graph, emu, group_key: str, count: int, guests: bool = False) -> list[str]:
    members = set(emu.group_members(gid(group_key)))
    users = user_ids(graph, **{"$select": "id,userType"})
    return [u["id"] for u in users if u["id"] not in members and (u["userType"] == "Guest") == guests][:count]


# ---- create ----------------------------------------------------------------------------------


def test_create_unified_group_example_1(graph, emu):
    response = graph.post("/groups", json={"description": "Self help community for library", "displayName":
                          "Library Assist", "groupTypes": ["Unified"], "mailEnabled": True, "mailNickname": "library",
                          "securityEnabled": False})  # fmt: skip
    assert response.status_code == 201
    body = response.json()
    for key in ("id", "deletedDateTime", "classification", "createdDateTime", "description", "displayName",
                "groupTypes", "mail", "mailEnabled", "mailNickname", "onPremisesSyncEnabled", "proxyAddresses",
                "renewedDateTime", "securityEnabled", "visibility", "onPremisesProvisioningErrors"):  # fmt: skip
        assert key in body
    assert body["visibility"] == "Public" and body["groupTypes"] == ["Unified"]
    assert body["mail"].startswith("library@")
    assert emu.get_group(body["id"])["mailNickname"] == "library"


def test_create_security_group_with_owners_and_members_example_2(graph, emu):
    owner, a, b = non_members(graph, emu, "security", 3)
    response = graph.post("/groups", json={"description": "Group with designated owner and members",
                          "displayName": "Operations group", "groupTypes": [], "mailEnabled": False,
                          "mailNickname": "operations2019", "securityEnabled": True,
                          "owners@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{owner}"],
                          "members@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{a}",
                                                 f"https://graph.microsoft.com/v1.0/users/{b}"]})  # fmt: skip
    assert response.status_code == 201
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#groups/$entity")
    assert (
        body["mail"] is None
        and body["visibility"] is None
        and body["securityIdentifier"].startswith("S-1-12-1-")
    )
    assert sorted(emu.group_members(body["id"])) == sorted([a, b])


def test_create_role_assignable_group_needs_role_management(graph, emu):
    body = {
        "displayName": "Role assignable group",
        "groupTypes": ["Unified"],
        "isAssignableToRole": True,
        "mailEnabled": True,
        "securityEnabled": True,
        "mailNickname": "contosohelpdeskadministrators",
    }
    assert graph.post("/groups", json=body).status_code == 403
    emu.set_app_roles(emu.client_id, [*seeds.APP_ROLES, "RoleManagement.ReadWrite.Directory"])
    from emulator_helpers import Graph, fetch_token

    created = Graph(emu, fetch_token(emu)).post("/groups", json=body)
    assert created.status_code == 201
    assert created.json()["isAssignableToRole"] is True and created.json()["visibility"] == "Private"


@pytest.mark.parametrize("missing", ["displayName", "mailEnabled", "mailNickname", "securityEnabled"])
def test_create_requires_each_field(graph, missing):
    body = {"displayName": "X", "mailEnabled": True, "mailNickname": "x-team", "securityEnabled": False,
            "groupTypes": ["Unified"]}  # fmt: skip
    del body[missing]
    response = graph.post("/groups", json=body)
    assert response.status_code == 400
    assert (
        error_of(response)["message"] == f"A value is required for property '{missing}' of resource 'Group'."
    )


@pytest.mark.parametrize(
    "nickname", ["has space", "a@b", "dots.not.allowed", "x" * 65, "naïve", "semi;colon"]
)
def test_mail_nickname_rules(graph, nickname):
    response = graph.post("/groups", json={"displayName": "X", "mailEnabled": True, "mailNickname": nickname,
                                           "securityEnabled": False, "groupTypes": ["Unified"]})  # fmt: skip
    assert response.status_code == 400
    assert "mailNickname" in error_of(response)["message"]


def test_mail_nickname_unique_among_m365_groups(graph):
    body = {"displayName": "Dup", "mailEnabled": True, "mailNickname": "ENGINEERING", "securityEnabled": False,
            "groupTypes": ["Unified"]}  # fmt: skip
    response = graph.post("/groups", json=body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "Request_BadRequest"


@pytest.mark.parametrize("security", [True, False])
def test_mail_enabled_security_and_distribution_lists_cannot_be_created(graph, security):
    response = graph.post("/groups", json={"displayName": "DL", "mailEnabled": True, "mailNickname": "dl-x",
                                           "securityEnabled": security, "groupTypes": []})  # fmt: skip
    assert response.status_code == 400
    assert (
        error_of(response)["message"]
        == "Cannot Create a mail-enabled security groups and or distribution list."
    )


def test_at_most_20_relationships_at_creation(graph, emu):
    ids = [u["id"] for u in user_ids(graph, **{"$filter": "userType eq 'Member'"})][:21]
    body = {"displayName": "Big", "mailEnabled": False, "mailNickname": "big", "securityEnabled": True,
            "owners@odata.bind": [ref(ids[0])], "members@odata.bind": [ref(i) for i in ids[1:21]]}  # fmt: skip
    response = graph.post("/groups", json=body)
    assert response.status_code == 400
    assert error_of(response)["message"] == "A resource cannot contain more than 20 link changes"
    body["members@odata.bind"] = body["members@odata.bind"][:19]
    assert graph.post("/groups", json=body).status_code == 201


# ---- read / update / delete ------------------------------------------------------------------


def test_get_group_example_keys_and_select(graph):
    response = graph.get(f"/groups/{gid('all-company')}")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#groups/$entity")
    assert {"id", "displayName", "groupTypes", "mailEnabled", "securityEnabled", "visibility",
            "onPremisesSyncEnabled", "isAssignableToRole", "membershipRule"} <= set(body)  # fmt: skip
    selected = graph.get(
        f"/groups/{gid('distribution')}",
        params={"$select": "displayName,groupTypes,mailEnabled,securityEnabled"},
    ).json()
    assert selected["@odata.context"].endswith(
        "$metadata#groups(displayName,groupTypes,mailEnabled,securityEnabled)/$entity"
    )
    assert set(selected) == {"@odata.context", "displayName", "groupTypes", "mailEnabled", "securityEnabled"}
    assert selected["mailEnabled"] is True and selected["securityEnabled"] is False


def test_missing_and_malformed_group_ids(graph):
    missing = str(uuid.uuid4())
    response = graph.get(f"/groups/{missing}", headers={"client-request-id": "abc-123"})
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "Request_ResourceNotFound"
    assert error["message"] == (f"Resource '{missing}' does not exist or one of its queried reference-property "
                                "objects are not present.")  # fmt: skip
    assert error["innerError"]["client-request-id"] == "abc-123" == response.headers["client-request-id"]
    bad = graph.get("/groups/test")
    assert bad.status_code == 400
    assert error_of(bad) | {} and error_of(bad)["message"] == "Invalid object identifier 'test'."


def test_update_group_example(graph, emu):
    response = graph.patch(f"/groups/{gid('marketing')}", json={"description": "Library Assist - ADC",
                           "displayName": "Library Assist - ADC", "mailNickname": "library-help-adc"})  # fmt: skip
    assert response.status_code == 204
    assert emu.get_group(gid("marketing"))["mailNickname"] == "library-help-adc"


def test_delete_group(graph, emu):
    assert graph.delete(f"/groups/{gid('marketing')}").status_code == 204
    assert emu.get_group(gid("marketing")) is None
    assert graph.get(f"/groups/{gid('marketing')}").status_code == 404


def test_list_groups_filter_and_search(graph):
    response = graph.get("/groups", params={"$filter": "startswith(displayName,'eng')"})
    assert [g["displayName"] for g in response.json()["value"]] == ["Engineering"]
    ids = f"'{gid('security')}','{gid('dynamic')}'"
    assert len(graph.get("/groups", params={"$filter": f"id in ({ids})"}).json()["value"]) == 2
    refused = graph.get("/groups", params={"$search": '"displayName:Sales"'})
    assert refused.status_code == 400 and error_of(refused)["code"] == "Request_UnsupportedQuery"
    found = graph.get(
        "/groups", params={"$search": '"displayName:Sales"'}, headers={"ConsistencyLevel": "eventual"}
    )
    assert [g["displayName"] for g in found.json()["value"]] == ["All Sales (dynamic)"]


# ---- members ---------------------------------------------------------------------------------


def test_list_members_paging_top_and_cast(graph, emu):
    group = gid("all-company")
    seen: list[str] = []
    url = f"/groups/{group}/members?$top=7"
    pages = 0
    while url:
        body = graph.get(url).json()
        seen += [m["id"] for m in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 5 and sorted(seen) == sorted(emu.group_members(group))
    first = graph.get(f"/groups/{group}/members").json()
    assert first["@odata.context"].endswith("$metadata#directoryObjects")
    assert first["value"][0]["@odata.type"] == "#microsoft.graph.user"
    assert graph.get(f"/groups/{group}/members", params={"$top": "999"}).status_code == 200
    too_many = graph.get(f"/groups/{group}/members", params={"$top": "1000"})
    assert too_many.status_code == 400 and "1000" in error_of(too_many)["message"]
    cast = graph.get(
        f"/groups/{group}/members/microsoft.graph.user", params={"$select": "displayName,id"}
    ).json()
    assert cast["@odata.context"].endswith("$metadata#users(displayName,id)")
    assert set(cast["value"][0]) == {"displayName", "id"}


def test_member_count_needs_consistency_level(graph, emu):
    group = gid("all-company")
    refused = graph.get(f"/groups/{group}/members/$count")
    assert refused.status_code == 400
    assert error_of(refused) == {**error_of(refused), "code": "Request_BadRequest",
                                 "message": "$count is not currently supported."}  # fmt: skip
    for path in (f"/groups/{group}/members/$count", f"/groups/{group}/members/microsoft.graph.user/$count"):
        response = graph.get(path, headers={"ConsistencyLevel": "eventual"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        assert int(response.text) == len(emu.group_members(group))
    ignored = graph.get(f"/groups/{group}/members", params={"$count": "true"}).json()
    assert "@odata.count" not in ignored
    counted = graph.get(f"/groups/{group}/members", params={"$count": "true", "$top": "5"},
                        headers={"ConsistencyLevel": "eventual"}).json()  # fmt: skip
    assert counted["@odata.count"] == len(emu.group_members(group))
    assert (
        "@odata.count"
        not in graph.get(counted["@odata.nextLink"], headers={"ConsistencyLevel": "eventual"}).json()
    )


def test_add_member_then_already_member_then_unknown(graph, emu):
    group = gid("marketing")
    (user,) = non_members(graph, emu, "marketing", 1)
    assert graph.post(f"/groups/{group}/members/$ref", json={"@odata.id": ref(user)}).status_code == 204
    assert user in emu.group_members(group)
    again = graph.post(f"/groups/{group}/members/$ref", json={"@odata.id": ref(user)})
    assert again.status_code == 400
    assert error_of(again)["message"] == (
        "One or more added object references already exist for the following modified properties: 'members'."
    )
    missing = str(uuid.uuid4())
    unknown = graph.post(f"/groups/{group}/members/$ref", json={"@odata.id": ref(missing)})
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "Request_ResourceNotFound"


def test_remove_member_and_not_a_member(graph, emu):
    group = gid("marketing")
    member = emu.group_members(group)[0]
    assert graph.delete(f"/groups/{group}/members/{member}/$ref").status_code == 204
    assert member not in emu.group_members(group)
    gone = graph.delete(f"/groups/{group}/members/{member}/$ref")
    assert gone.status_code == 404 and error_of(gone)["code"] == "Request_ResourceNotFound"


def test_guests_refused_by_tenant_policy(graph, emu):
    group = gid("marketing")
    (guest,) = non_members(graph, emu, "marketing", 1, guests=True)
    emu.set_tenant_policy(allow_guests_in_groups=False)
    response = graph.post(f"/groups/{group}/members/$ref", json={"@odata.id": ref(guest)})
    assert response.status_code == 403
    assert error_of(response)["message"] == (
        "Guests users are not allowed to join this Unified Group due to policy setting."
    )
    emu.set_tenant_policy(allow_guests_in_groups=True)
    assert graph.post(f"/groups/{group}/members/$ref", json={"@odata.id": ref(guest)}).status_code == 204


def test_patch_members_bind_is_all_or_nothing_and_limited_to_20(graph, emu):
    group = gid("marketing")
    fresh = non_members(graph, emu, "marketing", 21)
    existing = emu.group_members(group)[0]
    before = set(emu.group_members(group))
    mixed = graph.patch(f"/groups/{group}", json={"members@odata.bind": [ref(fresh[0]), ref(existing)]})
    assert mixed.status_code == 400
    assert set(emu.group_members(group)) == before
    too_many = graph.patch(f"/groups/{group}", json={"members@odata.bind": [ref(i) for i in fresh[:21]]})
    assert too_many.status_code == 400
    ok = graph.patch(f"/groups/{group}", json={"members@odata.bind": [ref(i) for i in fresh[:20]]})
    assert ok.status_code == 204
    assert set(emu.group_members(group)) == before | set(fresh[:20])


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("dynamic", 403),
        ("mail-security", 403),
        ("distribution", 403),
        ("on-prem", 400),
        ("role-assignable", 403),
    ],
)
def test_group_kinds_whose_membership_graph_will_not_change(graph, emu, key, status):
    (user,) = non_members(graph, emu, key, 1)
    response = graph.post(f"/groups/{gid(key)}/members/$ref", json={"@odata.id": ref(user)})
    assert response.status_code == status
    assert user not in emu.group_members(gid(key))


def test_role_assignable_membership_with_role_management(graph, emu):
    emu.set_app_roles(emu.client_id, [*seeds.APP_ROLES, "RoleManagement.ReadWrite.Directory"])
    from emulator_helpers import Graph, fetch_token

    (user,) = non_members(graph, emu, "role-assignable", 1)
    privileged = Graph(emu, fetch_token(emu))
    response = privileged.post(
        f"/groups/{gid('role-assignable')}/members/$ref", json={"@odata.id": ref(user)}
    )
    assert response.status_code == 204


def test_replication_lag_after_create(graph, emu):
    emu.set_faults(replication_lag_seconds=30)
    created = graph.post("/groups", json={"displayName": "Fresh", "mailEnabled": True, "mailNickname": "fresh",
                                          "securityEnabled": False, "groupTypes": ["Unified"]}).json()  # fmt: skip
    assert graph.get(f"/groups/{created['id']}").status_code == 404
    (user,) = non_members(graph, emu, "marketing", 1)
    lagging = graph.post(f"/groups/{created['id']}/members/$ref", json={"@odata.id": ref(user)})
    assert lagging.status_code == 400
    assert error_of(lagging)["message"] == (
        "The source resource object or one of the objects being referenced don't exist."
    )
    emu.control.replicate_now()
    assert graph.get(f"/groups/{created['id']}").status_code == 200


def test_stale_link_after_delete_behind_the_apps_back(graph, emu):
    emu.delete_group_behind_app(gid("engineering"))
    assert graph.get(f"/groups/{gid('engineering')}/members").status_code == 404


# ---- users -----------------------------------------------------------------------------------


def test_users_filter_in_up_to_15_values(graph):
    users = user_ids(graph, **{"$filter": "userType eq 'Member'", "$select": "mail,id"})
    mails = [u["mail"] for u in users][:16]
    quoted = ",".join(f"'{m.upper()}'" for m in mails[:15])
    found = graph.get("/users", params={"$filter": f"mail in ({quoted})"}).json()["value"]
    assert sorted(u["mail"] for u in found) == sorted(mails[:15])
    quoted16 = ",".join(f"'{m}'" for m in mails)
    refused = graph.get("/users", params={"$filter": f"mail in ({quoted16})"})
    assert refused.status_code == 400 and error_of(refused)["code"] == "Request_UnsupportedQuery"


def test_users_proxy_addresses_any_finds_aliases(graph):
    users = user_ids(graph, **{"$select": "id,proxyAddresses"})
    aliased = next(u for u in users if len(u["proxyAddresses"]) > 1)
    alias = aliased["proxyAddresses"][1]
    found = graph.get("/users", params={"$filter": f"proxyAddresses/any(x:x eq '{alias.upper()}')"}).json()
    assert [u["id"] for u in found["value"]] == [aliased["id"]]


def test_guest_upn_needs_percent_23(graph):
    guest = next(
        u for u in user_ids(graph, **{"$select": "id,userPrincipalName,userType"}) if u["userType"] == "Guest"
    )
    encoded = guest["userPrincipalName"].replace("#", "%23")
    response = graph.get(f"/users/{encoded}")
    assert response.status_code == 200 and response.json()["id"] == guest["id"]
    raw = graph.http.get(f"{graph.emu.graph_url}/users/{guest['userPrincipalName']}",
                         headers={"Authorization": f"Bearer {graph.token}"})  # fmt: skip
    assert raw.status_code == 404


def test_users_paging_and_advanced_operators(graph, emu):
    collected: list[str] = []
    url = "/users?$top=15"
    while url:
        body = graph.get(url).json()
        collected += [u["id"] for u in body["value"]]
        url = body.get("@odata.nextLink")
    assert len(collected) == len(set(collected)) == 40
    refused = graph.get("/users", params={"$filter": "endswith(mail,'@outlook.com')"})
    assert refused.status_code == 400 and error_of(refused)["message"] == "Unsupported Query."
    allowed = graph.get("/users", params={"$filter": "endswith(mail,'@outlook.com')", "$count": "true"},
                        headers={"ConsistencyLevel": "eventual"})  # fmt: skip
    assert allowed.status_code == 200 and "@odata.count" in allowed.json()
    count = graph.get("/users/$count")
    assert count.status_code == 400 and error_of(count)["message"] == "$count is not currently supported."


def test_create_user_needs_user_readwrite_all(graph, emu):
    body = {"accountEnabled": True, "displayName": "New Person", "mailNickname": "newperson",
            "userPrincipalName": f"newperson@{DOMAIN}", "passwordProfile": {"password": "x-Strong-1"}}  # fmt: skip
    assert graph.post("/users", json=body).status_code == 403
    emu.set_app_roles(emu.client_id, ["User.ReadWrite.All"])
    from emulator_helpers import Graph, fetch_token

    writer = Graph(emu, fetch_token(emu))
    created = writer.post("/users", json=body)
    assert created.status_code == 201
    emu.replicate_now()  # a new user is found once replicated
    assert writer.get(f"/users/newperson@{DOMAIN}").json()["id"] == created.json()["id"]


def test_unknown_segment_and_method(graph):
    assert graph.get("/nothing").status_code == 400
    response = graph.request("PUT", f"/groups/{gid('marketing')}")
    assert response.status_code == 405
    assert error_of(response)["message"] == "Specified HTTP method is not allowed for the request target."


def test_every_graph_response_has_request_ids_and_resource_units(graph):
    for response in (graph.get("/groups"), graph.get(f"/groups/{uuid.uuid4()}"), graph.get("/users")):
        assert response.headers["request-id"] and response.headers["client-request-id"]
        assert int(response.headers["x-ms-resource-unit"]) >= 1
    assert graph.get(f"/groups/{gid('all-company')}/members").headers["x-ms-resource-unit"] == "3"
    assert (
        graph.get(f"/groups/{gid('all-company')}/members?$select=id&$top=5").headers["x-ms-resource-unit"]
        == "1"
    )
    time.sleep(0)
