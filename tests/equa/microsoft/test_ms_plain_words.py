"""Validation answers of the group API say what is wrong in plain words (`detail`), beside the `errors` list that
programs read (pydantic's message, and the same plain words per field); the refused request changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ms_support import Team

from equa.plain_words import NOT_A_GROUP_ID

pytestmark = pytest.mark.retry_budget("api")


async def test_a_group_name_typed_as_group_id_is_answered_in_plain_words(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    bad = await client.post(team.url("link-group"), json={"groupId": "marketing"}, headers=team.admin_headers)
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["detail"] == NOT_A_GROUP_ID
    assert problem["code"] == "validation_failed"
    [error] = problem["errors"]
    assert error["field"] == "groupId"
    assert "UUID" in error["message"]  # pydantic's message stays for programs
    assert error["detail"] == NOT_A_GROUP_ID
    status = await client.get(team.url("status"), headers=team.admin_headers)
    assert status.json()["linked"] is False


@pytest.mark.parametrize(
    ("nickname", "words"),
    [
        (
            "my team",
            "A mail nickname cannot contain spaces: use plain letters (a to z, no accents), digits and hyphens",
        ),
        ("équipe", "A mail nickname cannot contain accented or non-Latin letters"),
        ("team@home", "A mail nickname cannot contain @: use plain letters"),
    ],
)
async def test_a_bad_mail_nickname_is_explained_with_the_rule(
    client: httpx.AsyncClient, team: Team, emu: Any, nickname: str, words: str
) -> None:
    writes = emu.stats()["writes"]
    response = await client.post(
        team.url("create-group"),
        json={"displayName": "Northwind", "mailNickname": nickname},
        headers=team.admin_headers,
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"].startswith(words), problem
    assert problem["errors"][0]["field"] == "mailNickname"
    assert problem["errors"][0]["detail"] == problem["detail"]
    assert emu.stats()["writes"] == writes


async def test_other_fields_keep_their_name_in_the_detail(client: httpx.AsyncClient, team: Team) -> None:
    response = await client.post(
        team.url("create-group"), json={"displayName": "x" * 300}, headers=team.admin_headers
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["detail"] == "displayName: Use at most 256 characters."
    assert problem["errors"][0]["detail"] == "Use at most 256 characters."
