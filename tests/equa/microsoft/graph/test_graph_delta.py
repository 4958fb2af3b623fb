"""Group delta rounds: current members on the first round, what changed on the next, an expired link typed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from equa.microsoft.graph import GraphClient
from equa.microsoft.graph.delta import (
    DeltaExpired,
    delta_filter,
    initial_delta_round,
    resume_delta_round,
    start_delta_round,
)


def new_group(emu: Any, members: list[str]) -> str:
    nickname = f"delta-{uuid.uuid4().hex[:8]}"
    group = emu.add_group(
        members=members, displayName=nickname, mailNickname=nickname, groupTypes=["Unified"]
    )
    return str(group["id"])


async def user_ids(graph: GraphClient, count: int) -> list[str]:
    response = await graph.get("users", params={"$select": "id", "$top": str(count)})
    return [str(u["id"]).lower() for u in response.json()["value"]]


async def test_a_round_over_several_groups_reads_members_then_only_changes(
    graph: GraphClient, instant_consistency: Any
) -> None:
    emu = instant_consistency
    people = await user_ids(graph, 720)
    big = new_group(emu, people[:700])  # more members than one entry carries: the group object repeats
    small = new_group(emu, people[700:703])

    first = await initial_delta_round(graph, [big, small])
    assert first.groups[big].added == set(people[:700]) and first.groups[small].added == set(people[700:703])
    assert not first.groups[big].removed and not first.groups[big].deleted

    # By hand: one member leaves the big group, one joins the small one; a third group is not in the round.
    await graph.delete(f"groups/{big}/members/{people[0]}/$ref")
    emu.add_members(small, [people[710]])
    emu.add_members(new_group(emu, []), [people[711]])
    second = await resume_delta_round(graph, first.delta_link)
    assert second.requests == 1
    assert {g: (c.added, c.removed) for g, c in second.groups.items()} == {
        big: (set(), {people[0]}),
        small: ({people[710]}, set()),
    }
    third = await resume_delta_round(graph, second.delta_link)
    assert third.groups == {}


async def test_latest_tracks_from_now_and_an_expired_link_is_delta_expired(
    graph: GraphClient, instant_consistency: Any
) -> None:
    emu = instant_consistency
    people = await user_ids(graph, 5)
    group = new_group(emu, people[:3])
    link = await start_delta_round(graph, [group])
    assert (await resume_delta_round(graph, link)).groups == {}  # the members before the token are not news
    emu.add_members(group, [people[4]])
    changed = await resume_delta_round(graph, link)
    assert changed.groups[group].added == {people[4]}

    for status in (400, 410):
        emu.expire_delta_tokens(emu.tenant_id, status)
        with pytest.raises(DeltaExpired) as expired:
            await resume_delta_round(graph, changed.delta_link)
        assert expired.value.status == status and expired.value.code == "syncStateNotFound"
        changed.delta_link = await start_delta_round(graph, [group])


def test_a_round_names_between_1_and_50_groups() -> None:
    assert delta_filter(["a", "b"]) == "id eq 'a' or id eq 'b'"
    for wrong in ([], [str(i) for i in range(51)]):
        with pytest.raises(ValueError, match="1 to 50"):
            delta_filter(wrong)
