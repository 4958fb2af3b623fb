"""Deleted, or not replicated yet? A 404 for the linked group is looked up among Microsoft 365's deleted items: a
deleted group clears the link at once (even right after linking) and says when it was deleted and that it can be
restored; a group absent from deleted items is replication lag while the link is new, and gone for good after."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from ms_support import Team, link, seed_group_id
from sqlalchemy import select

from equa.microsoft.models import AuditEvent
from equa.organizations.models import Organization

pytestmark = pytest.mark.retry_budget("api")


async def age_links(session_factory: Any) -> None:
    """Make every link older than the replication window."""
    async with session_factory() as session:
        for org in await session.scalars(select(Organization)):
            if org.microsoft_group_linked_at is not None:
                org.microsoft_group_linked_at = org.microsoft_group_linked_at.replace(year=2020)
        await session.commit()


async def linked_group_id(session_factory: Any, team: Team) -> str | None:
    async with session_factory() as session:
        org = await session.get(Organization, team.org.id, populate_existing=True)
        assert org is not None
        return str(org.microsoft_group) if org.microsoft_group else None


async def test_a_group_deleted_right_after_linking_answers_409_with_its_deletion_time_and_unlinks(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    group_id = await link(client, team, "marketing")  # a Microsoft 365 group
    emu.delete_group_behind_app(group_id)

    response = await client.get(team.url("group"), headers=team.admin_headers)
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["code"] == "microsoft_group_missing"
    assert problem["groupId"] == group_id
    assert problem["restorable"] is True
    assert (
        problem["action"] == "Restore it (within 30 days of its deletion), or link or create another group."
    )
    deleted_at = datetime.fromisoformat(problem["deletedDateTime"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - deleted_at).total_seconds()) < 120
    assert problem["deletedDateTime"] in problem["detail"]

    status = (await client.get(team.url("status"), headers=team.admin_headers)).json()
    assert status["linked"] is False
    assert await linked_group_id(session_factory, team) is None
    async with session_factory() as session:
        events = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "group.missing")))
    assert [e.target for e in events] == [group_id]
    assert "deleted items" in (events[0].detail or "")


async def test_a_security_group_deleted_right_after_linking_is_replication_lag_then_gone_for_good(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    group_id = await link(client, team, "security")  # security groups are deleted for good, at once
    emu.delete_group_behind_app(group_id)

    lagging = await client.get(team.url("group"), headers=team.admin_headers)
    assert lagging.status_code == 503, (
        lagging.text
    )  # new and absent from deleted items: maybe not replicated yet
    assert await linked_group_id(session_factory, team) == group_id

    await age_links(session_factory)
    gone = await client.get(team.url("group"), headers=team.admin_headers)
    assert gone.status_code == 409, gone.text
    problem = gone.json()
    assert problem["code"] == "microsoft_group_missing"
    assert problem["restorable"] is False and problem["deletedDateTime"] is None
    assert "no longer be restored" in problem["action"]
    assert await linked_group_id(session_factory, team) is None


async def test_a_group_deleted_more_than_30_days_ago_is_gone_for_good(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    group_id = await link(client, team, "engineering")
    await age_links(session_factory)
    emu.delete_group_behind_app(group_id)
    emu.age_deleted_item(group_id, 31)
    assert emu.deleted_items() == []

    response = await client.get(team.url("group/members"), headers=team.admin_headers)
    assert response.status_code == 409, response.text
    assert response.json()["restorable"] is False
    assert await linked_group_id(session_factory, team) is None


async def test_a_deleted_group_still_within_its_30_days_is_restorable_after_29(
    client: httpx.AsyncClient, team: Team, emu: Any, session_factory: Any
) -> None:
    group_id = await link(client, team, "engineering")
    await age_links(session_factory)
    emu.delete_group_behind_app(group_id)
    emu.age_deleted_item(group_id, 29)

    response = await client.get(team.url("group"), headers=team.admin_headers)
    assert response.status_code == 409, response.text
    assert response.json()["restorable"] is True
    assert seed_group_id("engineering") == group_id
