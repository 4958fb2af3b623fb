"""Administrative units: the seeded units, their group members, creating a group inside one, and permissions."""

from __future__ import annotations

from emulator_helpers import Graph, error_of, fetch_token

from graph_emulator import seeds

DOMAIN = seeds.DEFAULT_TENANT_DOMAIN
MANAGED = seeds.stable_id(DOMAIN, "seed-unit", "equa-managed-groups")
NETWORK = seeds.stable_id(DOMAIN, "seed-unit", "network-access")
UNITS = "/directory/administrativeUnits"
GROUP_BODY = {
    "@odata.type": "#microsoft.graph.group",
    "displayName": "Unit Team",
    "description": "Created inside the unit",
    "groupTypes": ["Unified"],
    "mailEnabled": True,
    "mailNickname": "unit-team",
    "securityEnabled": False,
}


def graph_with_roles(emu, roles: list[str]) -> Graph:
    emu.set_app_roles(emu.client_id, roles)
    return Graph(emu, fetch_token(emu))


def without(*roles: str) -> list[str]:
    return [role for role in seeds.APP_ROLES if role not in roles]


def test_seeded_units_are_listed_and_read_by_id(graph):
    listed = graph.get(UNITS)
    assert listed.status_code == 200
    names = {unit["displayName"]: unit for unit in listed.json()["value"]}
    assert set(names) == {"Equa managed groups", "Network access"}
    assert names["Equa managed groups"]["id"] == MANAGED
    assert names["Network access"]["membershipType"] == "Assigned"

    one = graph.get(f"{UNITS}/{MANAGED}", params={"$select": "id,displayName"})
    assert one.status_code == 200
    assert {k: v for k, v in one.json().items() if not k.startswith("@")} == {
        "id": MANAGED,
        "displayName": "Equa managed groups",
    }
    missing = graph.get(f"{UNITS}/{seeds.stable_id('nowhere')}")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "Request_ResourceNotFound"


def test_unit_groups_cast_lists_the_units_groups_with_paging(graph):
    seen: list[dict] = []
    url = f"{UNITS}/{MANAGED}/members/microsoft.graph.group?$top=3&$select=id,displayName,visibility"
    pages = 0
    while url:
        response = graph.get(url)
        assert response.status_code == 200
        body = response.json()
        seen.extend(body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 2
    by_name = {group["displayName"]: group for group in seen}
    assert set(by_name) == {"Engineering", "Marketing", "Project Falcon", "Leadership Council"}
    assert by_name["Leadership Council"]["visibility"] == "HiddenMembership"

    network = graph.get(f"{UNITS}/{NETWORK}/members").json()["value"]
    assert [(m["@odata.type"], m["displayName"]) for m in network] == [
        ("#microsoft.graph.group", "VPN Users")
    ]


def test_one_member_of_a_unit_is_read_by_its_id(graph, emu):
    marketing = seeds.stable_id(DOMAIN, "seed-group", "marketing")
    vpn = seeds.stable_id(DOMAIN, "seed-group", "security")
    found = graph.get(f"{UNITS}/{MANAGED}/members/{marketing}", params={"$select": "id,displayName"})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["@odata.type"] == "#microsoft.graph.group"
    assert (body["id"], body["displayName"]) == (marketing, "Marketing")
    # A group of the tenant that is not in this unit (it is in the other one) is not found here.
    elsewhere = graph.get(f"{UNITS}/{MANAGED}/members/{vpn}")
    assert elsewhere.status_code == 404
    assert error_of(elsewhere)["code"] == "Request_ResourceNotFound"
    assert graph.get(f"{UNITS}/{NETWORK}/members/{vpn}").status_code == 200
    assert graph.get(f"{UNITS}/{MANAGED}/members/not-a-guid").status_code == 400
    emu.remove_unit_members(MANAGED, [marketing])
    assert graph.get(f"{UNITS}/{MANAGED}/members/{marketing}").status_code == 404
    denied = graph_with_roles(emu, without("AdministrativeUnit.Read.All"))
    assert denied.get(f"{UNITS}/{NETWORK}/members/{vpn}").status_code == 403


def test_reading_units_needs_an_administrative_unit_or_directory_permission(emu):
    denied = graph_with_roles(emu, without("AdministrativeUnit.Read.All"))
    for path in (UNITS, f"{UNITS}/{MANAGED}", f"{UNITS}/{MANAGED}/members/microsoft.graph.group"):
        response = denied.get(path)
        assert response.status_code == 403, path
        assert error_of(response)["code"] == "Authorization_RequestDenied"
    directory_reader = graph_with_roles(emu, ["Directory.Read.All"])
    assert directory_reader.get(UNITS).status_code == 200


def test_a_group_created_inside_a_unit_lands_in_it(graph, emu):
    emu.set_lag(30)  # long enough to see the new group still replicating, whatever the machine's load
    created = graph.post(f"{UNITS}/{MANAGED}/members", json=GROUP_BODY)
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["@odata.type"] == "#microsoft.graph.group"
    assert group["displayName"] == "Unit Team" and group["mail"] == f"unit-team@{DOMAIN}"
    assert group["id"] in emu.unit_members(MANAGED)
    listed = graph.get(f"{UNITS}/{MANAGED}/members/microsoft.graph.group", params={"$select": "id"})
    assert group["id"] in {g["id"] for g in listed.json()["value"]}
    assert graph.get(f"/groups/{group['id']}").status_code == 404  # still replicating, as any new group
    emu.replicate_now()
    assert graph.get(f"/groups/{group['id']}").json()["displayName"] == "Unit Team"


def test_creating_in_a_unit_needs_group_creation_and_unit_reading(emu):
    cases = {
        "no unit permission": without("AdministrativeUnit.Read.All"),
        "no group creation": without("Group.Create", "Group.ReadWrite.All"),
    }
    for label, roles in cases.items():
        response = graph_with_roles(emu, roles).post(f"{UNITS}/{MANAGED}/members", json=GROUP_BODY)
        assert response.status_code == 403, label
        assert error_of(response)["code"] == "Authorization_RequestDenied"
    assert emu.find_groups(displayName="Unit Team") == []
    assert (
        graph_with_roles(emu, ["Group.Create", "AdministrativeUnit.ReadWrite.All"])
        .post(f"{UNITS}/{MANAGED}/members", json=GROUP_BODY)
        .status_code
        == 201
    )


def test_creating_in_a_unit_needs_a_directory_role_scoped_to_it(graph, emu):
    """Microsoft asks the app for more than permissions here: a Groups Administrator (or User Administrator) role
    assignment scoped to the unit. Without it the answer is the same 403 as a missing permission."""
    emu.set_unit_roles(MANAGED, [])
    denied = graph.post(f"{UNITS}/{MANAGED}/members", json=GROUP_BODY)
    assert denied.status_code == 403
    assert error_of(denied)["code"] == "Authorization_RequestDenied"
    # A role in another unit does not count, and the permissions alone (even Directory.ReadWrite.All) do not either.
    emu.set_unit_roles(NETWORK, [seeds.GROUPS_ADMINISTRATOR])
    assert graph.post(f"{UNITS}/{MANAGED}/members", json=GROUP_BODY).status_code == 403
    directory_writer = graph_with_roles(emu, ["Directory.ReadWrite.All"])
    assert directory_writer.post(f"{UNITS}/{MANAGED}/members", json=GROUP_BODY).status_code == 403
    assert emu.find_groups(displayName="Unit Team") == []

    assert emu.set_unit_roles(MANAGED, [seeds.USER_ADMINISTRATOR]) != {}
    assert directory_writer.post(f"{UNITS}/{MANAGED}/members", json=GROUP_BODY).status_code == 201


def test_a_unit_made_through_the_control_api_carries_its_role_assignments(emu):
    bare = emu.add_administrative_unit(displayName="Bare unit")
    graph = Graph(emu, fetch_token(emu))
    assert graph.post(f"{UNITS}/{bare['id']}/members", json=GROUP_BODY).status_code == 403
    staffed = emu.add_administrative_unit(
        displayName="Staffed unit",
        scopedRoleMembers=[{"clientId": emu.client_id, "roles": [seeds.GROUPS_ADMINISTRATOR]}],
    )
    created = graph.post(f"{UNITS}/{staffed['id']}/members", json=GROUP_BODY)
    assert created.status_code == 201, created.text
    assert created.json()["id"] in emu.unit_members(staffed["id"])


def test_creating_in_a_unit_needs_the_group_type(graph, emu):
    body = {k: v for k, v in GROUP_BODY.items() if k != "@odata.type"}
    response = graph.post(f"{UNITS}/{MANAGED}/members", json=body)
    assert response.status_code == 400
    assert "@odata.type" in error_of(response)["message"]
    assert emu.find_groups(displayName="Unit Team") == []


def test_adding_an_existing_group_by_ref_needs_unit_write(graph, emu):
    all_company = seeds.stable_id(DOMAIN, "seed-group", "all-company")
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{all_company}"}
    denied = graph.post(f"{UNITS}/{NETWORK}/members/$ref", json=ref)
    assert denied.status_code == 403
    assert all_company not in emu.unit_members(NETWORK)

    writer = graph_with_roles(emu, [*seeds.APP_ROLES, "AdministrativeUnit.ReadWrite.All"])
    assert writer.post(f"{UNITS}/{NETWORK}/members/$ref", json=ref).status_code == 204
    assert all_company in emu.unit_members(NETWORK)
    again = writer.post(f"{UNITS}/{NETWORK}/members/$ref", json=ref)
    assert again.status_code == 400
    assert "already exist" in error_of(again)["message"]
    assert writer.delete(f"{UNITS}/{NETWORK}/members/{all_company}/$ref").status_code == 204
    assert all_company not in emu.unit_members(NETWORK)


def test_control_api_creates_units_and_adds_members(graph, emu):
    falcon = seeds.stable_id(DOMAIN, "seed-group", "empty-team")
    unit = emu.add_administrative_unit(displayName="Test unit", members=[falcon])
    assert unit["members"] == [falcon]
    marketing = seeds.stable_id(DOMAIN, "seed-group", "marketing")
    emu.add_unit_members(unit["id"], [marketing])
    assert {u["displayName"] for u in emu.administrative_units()} >= {"Test unit", "Equa managed groups"}
    listed = graph.get(
        f"{UNITS}/{unit['id']}/members/microsoft.graph.group", params={"$select": "displayName"}
    )
    assert sorted(g["displayName"] for g in listed.json()["value"]) == ["Marketing", "Project Falcon"]


def test_a_deleted_group_leaves_its_unit(graph, emu):
    falcon = seeds.stable_id(DOMAIN, "seed-group", "empty-team")
    assert graph.delete(f"/groups/{falcon}").status_code == 204
    assert falcon not in emu.unit_members(MANAGED)
