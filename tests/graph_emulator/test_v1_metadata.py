"""Graph v1.0's metadata as a test: what the emulator returns and accepts in $select, type by type.

The metadata (`v1.0-directory-types.json`, extracted from Microsoft's schemas/v1.0-Prod.csdl) lies beside the
reference examples; without it this module skips, saying where it looked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from emulator_helpers import Graph, fetch_token

from graph_emulator import seeds, v1_properties
from graph_emulator.groups import GROUP_PROPERTIES
from graph_emulator.units import UNIT_PROPERTIES
from graph_emulator.users import USER_PROPERTIES
from reference_examples import reference_dir

METADATA = json.loads((reference_dir() / "v1.0-directory-types.json").read_text(encoding="utf-8"))
ENTITY_TYPES = METADATA["entityTypes"]
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "Edm.String": (str,),
    "Edm.Boolean": (bool,),
    "Edm.Int32": (int,),
    "Edm.Int64": (int,),
    "Edm.Guid": (str,),
    "Edm.DateTimeOffset": (str,),
    "Edm.Binary": (str,),
}


def v1_properties_of(type_name: str) -> dict[str, str]:
    """Declared properties of the type and of its base types, plus the key."""
    declared: dict[str, str] = {"id": "Edm.String"}
    entity = ENTITY_TYPES[type_name]
    declared.update(ENTITY_TYPES["directoryObject"]["properties"])
    declared.update(entity["properties"])
    return declared


def json_type_matches(edm: str, value: Any) -> bool:
    if value is None:
        return True
    if edm.startswith("Collection(") and edm.endswith(")"):
        return isinstance(value, list) and all(
            json_type_matches(edm[len("Collection(") : -1], v) for v in value
        )
    if edm in PRIMITIVES:
        return isinstance(value, PRIMITIVES[edm]) and not (edm == "Edm.Int32" and isinstance(value, bool))
    # graph.* is a complex type (an object) or an enumeration (a string member name).
    return edm.startswith("graph.") and isinstance(value, dict | str)


def check_against_metadata(type_name: str, body: dict[str, Any]) -> None:
    declared = v1_properties_of(type_name)
    for name, value in body.items():
        if name.startswith("@") or "@odata." in name:
            continue
        assert name in declared, f"{type_name}.{name} is not a v1.0 property"
        assert json_type_matches(declared[name], value), (
            f"{type_name}.{name}={value!r} is not {declared[name]}"
        )


@pytest.fixture
def reader(emu) -> Graph:
    emu.set_app_roles(emu.client_id, [*seeds.APP_ROLES, "Directory.Read.All"])
    return Graph(emu, fetch_token(emu))


def all_pages(graph: Graph, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while url:
        body = graph.get(url).json()
        items.extend(body["value"])
        url = body.get("@odata.nextLink")
    return items


@pytest.mark.parametrize(
    ("type_name", "collection"),
    [
        ("group", "/groups"),
        ("user", "/users"),
        ("administrativeUnit", "/directory/administrativeUnits"),
        ("organization", "/organization"),
    ],
)
def test_every_returned_property_is_v1_with_its_type(reader, type_name, collection):
    every = ",".join(sorted(v1_properties_of(type_name)))
    for query in ("", f"?$select={every}"):
        items = all_pages(reader, collection + query)
        assert items, collection
        for item in items:
            check_against_metadata(type_name, item)
            single = reader.get(f"{collection}/{item['id']}{query}")
            assert single.status_code == 200, single.text
            check_against_metadata(type_name, single.json())


def test_members_and_created_groups_carry_v1_properties_only(reader, graph):
    engineering = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "engineering")
    for member in all_pages(reader, f"/groups/{engineering}/members"):
        check_against_metadata(member["@odata.type"].removeprefix("#microsoft.graph."), member)
    created = graph.post(
        "/groups",
        json={"displayName": "Meta", "mailEnabled": False, "mailNickname": "meta", "securityEnabled": True},
    )
    assert created.status_code == 201
    check_against_metadata("group", created.json())


@pytest.mark.parametrize(
    ("type_name", "accepted"),
    [
        ("group", GROUP_PROPERTIES),
        ("user", USER_PROPERTIES),
        ("administrativeUnit", UNIT_PROPERTIES),
        ("organization", set(v1_properties.ORGANIZATION_V1)),
    ],
)
def test_select_accepts_exactly_the_v1_properties(type_name, accepted):
    assert set(accepted) == set(v1_properties_of(type_name))


def test_select_refuses_what_v1_does_not_have(reader):
    group = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "engineering")
    for name in ("createdByAppId", "members", "isFavourite", "userPrincipalName"):
        assert reader.get(f"/groups/{group}", params={"$select": name}).status_code == 400, name
    assert reader.get("/users", params={"$select": "groupTypes"}).status_code == 400
