"""People's addresses stay out of the logs: a sync and a group search with canary addresses leave none behind.

The audit table and the run outcomes may name people (admins read them); log lines go to log collectors and must not.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sync_support import directory_user, load_tenant, make_team

from equa.logging_setup import configure_logging
from equa.microsoft.models import SyncOutcome
from equa.settings import Settings

pytestmark = pytest.mark.retry_budget("sync")


CANARY = f"canary{uuid.uuid4().hex[:10]}"


@pytest.fixture
def captured_log(settings: Settings) -> Iterator[io.StringIO]:
    # DEBUG, the most an operator can turn on: it shows the service's own line for each Graph request.
    stream = io.StringIO()
    handler = configure_logging(settings.model_copy(update={"log_level": "DEBUG"}), stream=stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


async def test_a_sync_and_a_group_search_log_no_address(
    captured_log: io.StringIO, client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i, prefix=f"{CANARY}in") for i in range(4)]
    stranger = directory_user(9, prefix=f"{CANARY}stranger")
    tenant = load_tenant(
        emu, [*users, stranger], members=[users[0]["id"], stranger["id"]], owners=[users[0]["id"]]
    )
    team = [u["mail"] for u in users] + [f"{CANARY}.nobody@elsewhere.example"]
    org, admin, _ = await make_team(
        session_factory, team, group_id=tenant.group_id, admin_email=f"{CANARY}.admin@equa.example"
    )
    headers = await bearer(admin)
    base = f"/api/v1/organizations/{org.id}/microsoft"

    run = await client.post(f"{base}/sync-members?wait=30", json={}, headers=headers)
    assert run.status_code == 200, run.text
    assert run.json()["status"] == "succeeded"
    found = await client.get(f"{base}/groups", params={"search": f"{CANARY}@equa.example"}, headers=headers)
    assert found.status_code == 200, found.text
    missing = await client.get(f"{base}/groups", params={"search": f"{CANARY}'"}, headers=headers)
    assert missing.status_code in (200, 422), missing.text

    async with session_factory() as session:
        emails = set(await session.scalars(select(SyncOutcome.email)))
    assert any(CANARY in email for email in emails)  # the outcomes do name them: the canary reached Graph

    log_text = captured_log.getvalue()
    leaked = [line for line in log_text.splitlines() if CANARY in line]
    assert leaked == []
    # The service's own Graph request lines are there, each with the path (ids templated) and the status only.
    graph_lines = [
        line for line in log_text.splitlines() if "equa.microsoft.graph" in line and " -> " in line
    ]
    assert any(re.search(r" GET /groups -> 200 in ", line) for line in graph_lines), graph_lines
    assert any(re.search(r" GET /groups/\{id\}/members -> 200 in ", line) for line in graph_lines), (
        graph_lines
    )
    assert not any("?" in line or "$filter" in line or "$search" in line for line in graph_lines)
