"""Cursors are opaque and signed: they carry only a skip token or a keyset position and the page size.

Before, a cursor was a base64 Graph URL whose prefix alone was checked, so OData options could be smuggled in
(`$top=999` passed the page cap).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from ms_support import Team, link

from graph_emulator.seeds import default_seed

pytestmark = pytest.mark.retry_budget("api")


def payload_of(cursor: str) -> dict[str, Any]:
    data = cursor.split(".", 1)[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    return decoded


def with_payload(cursor: str, payload: dict[str, Any]) -> str:
    data = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"{data}.{cursor.split('.', 1)[1]}"


async def first_members_page(client: httpx.AsyncClient, team: Team) -> dict[str, Any]:
    response = await client.get(team.url("group/members"), params={"limit": "5"}, headers=team.admin_headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_member_cursor_carries_only_the_skip_token_and_page_size(
    client: httpx.AsyncClient, team: Team
) -> None:
    await link(client, team, "engineering")
    cursor = (await first_members_page(client, team))["nextCursor"]

    assert set(payload_of(cursor)) == {"n", "t"}
    assert payload_of(cursor)["n"] == 5
    assert "http" not in json.dumps(payload_of(cursor))


async def test_an_edited_cursor_cannot_raise_the_page_size_or_reach_graph(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    await link(client, team, "engineering")
    cursor = (await first_members_page(client, team))["nextCursor"]
    members_url = f"{emu.graph_url}/groups/{{id}}/members"
    smuggled_link = f"{members_url}?$top=999&$skiptoken={payload_of(cursor)['t']}"
    attempts = [
        with_payload(cursor, {**payload_of(cursor), "n": 999}),
        with_payload(cursor, {**payload_of(cursor), "t": payload_of(cursor)["t"] + "&$top=999"}),
        base64.urlsafe_b64encode(smuggled_link.encode()).decode().rstrip("="),
        cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
        "not-a-cursor",
    ]
    emu.reset_stats()
    for attempt in attempts:
        response = await client.get(
            team.url("group/members"), params={"cursor": attempt}, headers=team.admin_headers
        )
        assert response.status_code == 422, (attempt, response.text)
        assert response.json()["errors"][0]["field"] == "cursor"
    assert emu.stats()["requests"].get("GET /v1.0/groups/{id}/members", 0) == 0

    honest = await client.get(
        team.url("group/members"), params={"cursor": cursor}, headers=team.admin_headers
    )
    assert honest.status_code == 200
    assert len(honest.json()["items"]) == 5


async def test_a_cursor_works_only_for_the_list_and_organization_that_gave_it(
    client: httpx.AsyncClient, team: Team
) -> None:
    await link(client, team, "engineering")
    cursor = (await first_members_page(client, team))["nextCursor"]
    await link_other(client, team)

    elsewhere = await client.get(
        team.url("group/members", team.other_org), params={"cursor": cursor}, headers=team.outsider_headers
    )
    other_list = await client.get(team.url("groups"), params={"cursor": cursor}, headers=team.admin_headers)
    audit = await client.get(team.url("audit"), params={"cursor": cursor}, headers=team.admin_headers)

    assert elsewhere.status_code == 422
    assert other_list.status_code == 422
    assert audit.status_code == 422


async def link_other(client: httpx.AsyncClient, team: Team) -> None:
    from ms_support import seed_group_id

    response = await client.post(
        team.url("link-group", team.other_org),
        json={"groupId": seed_group_id("marketing")},
        headers=team.outsider_headers,
    )
    assert response.status_code in (200, 403), response.text


async def test_search_pages_continue_the_signed_search(client: httpx.AsyncClient, team: Team) -> None:
    first = await client.get(team.url("groups"), params={"limit": "3"}, headers=team.admin_headers)
    assert first.status_code == 200, first.text
    names = [g["displayName"] for g in first.json()["items"]]
    cursor = first.json()["nextCursor"]
    while cursor:
        assert set(payload_of(cursor)) <= {"n", "t", "q"}
        page = await client.get(team.url("groups"), params={"cursor": cursor}, headers=team.admin_headers)
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 3
        names += [g["displayName"] for g in page.json()["items"]]
        cursor = page.json()["nextCursor"]
    # Every group of the tenant (these tests run tenant-wide), each once.
    assert len(names) == len(set(names)) == len(default_seed()["tenants"][0]["groups"])


async def test_a_tampered_keyset_cursor_answers_422(client: httpx.AsyncClient, team: Team) -> None:
    await link(client, team)
    await client.delete(team.url("unlink-group"), headers=team.admin_headers)
    await link(client, team, "marketing")
    first = await client.get(team.url("audit"), params={"limit": "1"}, headers=team.admin_headers)
    cursor = first.json()["nextCursor"]
    assert set(payload_of(cursor)) == {"n", "p"}

    grown = with_payload(cursor, {**payload_of(cursor), "n": 200})
    response = await client.get(team.url("audit"), params={"cursor": grown}, headers=team.admin_headers)

    assert response.status_code == 422
