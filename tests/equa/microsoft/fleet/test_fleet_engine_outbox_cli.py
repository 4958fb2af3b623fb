"""A team member added with `equa orgs add-member` reaches the linked group at the next fleet cycle, in one targeted
run: the command writes the outbox in its own transaction (and never calls Graph itself), so the change does not
wait for the next full reconcile."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fleet_engine_support import cycle_and_wait, link_teams, load_groups, runs_of
from sqlalchemy import select

from equa.accounts.models import User, normalize_email
from equa.microsoft.fleet.models import PendingChange

pytestmark = pytest.mark.retry_budget("sync")

EQUA = str(Path(sys.executable).with_name("equa"))


def command_line_env(settings: Any, tmp_path: Path, *, integration: bool = True) -> dict[str, str]:
    """An operator's shell on the same database as the app (and, with `integration`, the same Microsoft settings)."""
    env = {
        **os.environ,
        "EQUA_DATABASE_URL": settings.database_url,
        "EQUA_DATA_DIR": str(tmp_path / "operator"),
        "EQUA_SECRET_KEY": settings.secret_key.get_secret_value(),
    }
    if not integration:
        return {name: value for name, value in env.items() if not name.startswith("MS_")}
    return {
        **env,
        "MS_AUTH_ENABLED": "true",
        "MS_AUTH_CLIENT_ID": settings.ms_auth_client_id,
        "MS_AUTH_TENANT_ID": settings.ms_auth_tenant_id,
        "MS_AUTH_SECRET": settings.ms_auth_secret.get_secret_value(),
        "MS_AUTHORITY_HOST": settings.ms_authority_host,
        "MS_GRAPH_URL": settings.ms_graph_url,
        "MS_CA_BUNDLE": str(settings.ms_ca_bundle),
        "MS_GROUP_SCOPE": settings.ms_group_scope,
    }


async def equa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The `equa` command in its own process, as an operator runs it (off the event loop, which the app uses)."""
    return await asyncio.to_thread(
        subprocess.run, [EQUA, *args], capture_output=True, text=True, timeout=120, env=env
    )


async def user_id_of(session_factory: Any, address: str) -> uuid.UUID:
    async with session_factory() as session:
        found = await session.scalar(select(User.id).where(User.email_normalized == normalize_email(address)))
    assert found is not None
    return found


async def pending_changes(session_factory: Any) -> list[tuple[Any, ...]]:
    async with session_factory() as session:
        return [(p.organization_id, p.user_id, p.kind) for p in await session.scalars(select(PendingChange))]


async def test_a_member_added_at_the_command_line_joins_the_linked_group_at_the_next_cycle(
    app: Any, emu: Any, session_factory: Any, settings: Any, tmp_path: Path
) -> None:
    tenant = load_groups(emu, 2)
    organizations = await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    joiner = tenant.users[-1]

    added = await equa(
        command_line_env(settings, tmp_path), "orgs", "add-member", str(organizations[1]), joiner["mail"]
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == [
        f"{joiner['mail']} is now member of Fleet org 1",
        "The linked Microsoft 365 group gets the change at the scheduler's next sync cycle.",
    ]
    # The command only wrote the outbox: the group is unchanged until the scheduler's cycle carries it.
    joiner_id = await user_id_of(session_factory, joiner["mail"])
    assert await pending_changes(session_factory) == [(organizations[1], joiner_id, "team")]
    assert joiner["id"] not in emu.group_members(tenant.groups[1])

    report = await cycle_and_wait(jobs)
    assert report.targeted_runs == 1 and report.full_reconciles == 0
    (run,) = await runs_of(session_factory, report.run_ids)
    assert run.organization_id == organizations[1] and run.trigger == "delta"
    assert run.targets == [str(joiner_id)] and run.counts["added"] == 1
    assert joiner["id"] in emu.group_members(tenant.groups[1])
    assert await pending_changes(session_factory) == []
    assert (await cycle_and_wait(jobs)).run_ids == []


async def test_with_the_integration_off_the_command_line_leaves_no_change_waiting(
    app: Any, emu: Any, session_factory: Any, settings: Any, tmp_path: Path
) -> None:
    tenant = load_groups(emu, 1)
    organizations = await link_teams(session_factory, tenant)
    joiner = tenant.users[-1]

    added = await equa(
        command_line_env(settings, tmp_path, integration=False),
        "orgs",
        "add-member",
        str(organizations[0]),
        joiner["mail"],
    )
    assert added.returncode == 0, added.stderr
    # No fleet cycle runs without the integration, so nothing is written for one, and nothing is promised.
    assert added.stdout.splitlines() == [f"{joiner['mail']} is now member of Fleet org 0"]
    assert await pending_changes(session_factory) == []
