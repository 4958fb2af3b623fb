"""A taken mail alias gets "-2", "-3", ... appended: its own digits are never counted up ("board-2025" taken
gives "board-2025-2", not "board-2026")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ms_support import Team

from equa.microsoft.groups.creation import _after, nickname_candidates

pytestmark = pytest.mark.retry_budget("api")


def test_the_candidates_append_a_suffix_and_keep_the_alias_as_it_is() -> None:
    assert nickname_candidates("board-2025")[:3] == ["board-2025", "board-2025-2", "board-2025-3"]
    assert nickname_candidates("team-1")[1] == "team-1-2"
    assert _after("board-2025", "board-2025") == "board-2025-2"
    assert _after("board-2025", "board-2025-2") == "board-2025-3"
    long = "x" * 64
    assert all(len(c) <= 64 for c in nickname_candidates(long))
    assert nickname_candidates(long)[2].endswith("-3")


@pytest.mark.parametrize(
    ("display_name", "taken", "expected"),
    [
        ("Board 2025", ["board-2025"], "board-2025-2"),
        ("Board 2025", ["board-2025", "board-2025-2"], "board-2025-3"),
        ("Team 1", ["team-1"], "team-1-2"),
    ],
)
async def test_create_group_appends_the_first_free_suffix_to_a_taken_alias(
    client: httpx.AsyncClient, team: Team, emu: Any, display_name: str, taken: list[str], expected: str
) -> None:
    for nickname in taken:
        emu.add_group(
            displayName=nickname,
            mailNickname=nickname,
            groupTypes=["Unified"],
            mailEnabled=True,
            securityEnabled=False,
        )
    emu.replicate_now()
    created = await client.post(
        team.url("create-group"), json={"displayName": display_name}, headers=team.admin_headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["mailNickname"] == expected
