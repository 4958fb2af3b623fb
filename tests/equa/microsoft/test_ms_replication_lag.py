"""Graph replicates member changes with a lag (the emulator's default profile does too): the admin who just added
or removed someone sees the change at once in the member list, the member count and the status card."""

from __future__ import annotations

import httpx
import pytest
from ms_support import Team, link, tenant_members

pytestmark = pytest.mark.retry_budget("api")


async def listed_ids(client: httpx.AsyncClient, team: Team) -> set[str]:
    response = await client.get(
        team.url("group/members"), params={"limit": "100"}, headers=team.admin_headers
    )
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["items"]}


async def member_count(client: httpx.AsyncClient, team: Team) -> int:
    response = await client.get(team.url("group"), headers=team.admin_headers)
    assert response.status_code == 200, response.text
    return int(response.json()["memberCount"])


async def test_an_added_and_a_removed_member_show_at_once_while_graph_lags(
    client: httpx.AsyncClient, team: Team, emu
) -> None:
    assert emu.control.consistency()["effective_lag_seconds"] > 0  # the default, lagging profile
    await link(client, team, "marketing")
    before_ids = await listed_ids(client, team)
    before = await member_count(client, team)
    person = next(p for p in tenant_members() if p["id"] not in before_ids)

    added = await client.post(
        team.url("group/members"), json={"userId": person["id"]}, headers=team.admin_headers
    )
    assert added.status_code == 201, added.text
    # Graph still answers the old list and count for a second: the service shows its own write anyway.
    assert person["id"] in await listed_ids(client, team)
    assert await member_count(client, team) == before + 1

    removed = await client.delete(team.url(f"group/members/{person['id']}"), headers=team.admin_headers)
    assert removed.status_code == 204
    assert person["id"] not in await listed_ids(client, team)
    assert await member_count(client, team) == before

    emu.replicate_now()
    assert await listed_ids(client, team) == before_ids
    assert await member_count(client, team) == before
