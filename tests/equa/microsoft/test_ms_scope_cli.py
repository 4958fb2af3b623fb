"""`equa microsoft grant-group / revoke-group / grants`, and `equa sync` of a group outside the scope."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ms_support import seed_group_id
from typer.testing import CliRunner

from equa.db.base import utcnow
from equa.organizations.models import Organization

ENGINEERING = seed_group_id("engineering")


@pytest.fixture
def equa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu: Any) -> Iterator[Any]:
    from equa.cli import app as cli

    env = {
        "EQUA_DATA_DIR": str(tmp_path / "data"),
        "EQUA_SECRET_KEY": "cli-scope-key-" + "k" * 30,
        "MS_AUTH_ENABLED": "true",
        "MS_AUTH_CLIENT_ID": emu.client_id,
        "MS_AUTH_TENANT_ID": emu.tenant_id,
        "MS_AUTH_SECRET": emu.client_secret,
        "MS_AUTHORITY_HOST": emu.base_url,
        "MS_GRAPH_URL": emu.graph_url,
        "MS_CA_BUNDLE": str(emu.ca_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("EQUA_DATABASE_URL", "EQUA_BROKER_URL", "EQUA_REDIS_URL", "MS_GROUP_SCOPE"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args))

    assert run("db", "upgrade").exit_code == 0
    yield run


def make_org(equa: Any, name: str) -> str:
    admin = f"{uuid.uuid4().hex[:8]}@equa.example"
    assert equa("users", "create", admin).exit_code == 0
    created = equa("orgs", "create", name, "--admin", admin)
    assert created.exit_code == 0, created.output
    return str(created.stdout.strip())


async def link_directly(data_dir: Path, organization_id: str, group_id: str) -> None:
    from equa.db.engine import create_engine_for, create_session_factory

    engine = create_engine_for(f"sqlite+aiosqlite:///{data_dir / 'equa.db'}")
    try:
        async with create_session_factory(engine)() as session:
            organization = await session.get(Organization, uuid.UUID(organization_id))
            assert organization is not None
            organization.microsoft_group = uuid.UUID(group_id)
            organization.microsoft_group_linked_at = utcnow()
            await session.commit()
    finally:
        await engine.dispose()


def test_operators_grant_list_and_revoke_groups(equa: Any, tmp_path: Path) -> None:
    org = make_org(equa, "Contoso team")
    other = make_org(equa, "Other team")
    assert equa("microsoft", "grants").stdout.strip() == "No groups are granted."

    granted = equa("microsoft", "grant-group", org, ENGINEERING)
    assert granted.exit_code == 0, granted.output
    assert granted.stdout.strip() == f"Granted group {ENGINEERING} (Engineering) to organization {org}."
    assert "nothing changed" in equa("microsoft", "grant-group", org, ENGINEERING).stdout

    elsewhere = equa("microsoft", "grant-group", other, ENGINEERING)
    assert elsewhere.exit_code == 1
    assert "belongs to another Equa organization" in elsewhere.output
    hidden = equa("microsoft", "grant-group", org, seed_group_id("leadership-council"))
    assert hidden.exit_code == 1
    assert "membership is hidden" in hidden.output
    unknown = equa("microsoft", "grant-group", org, str(uuid.uuid4()))
    assert unknown.exit_code == 1 and "no group with id" in unknown.output

    listing = equa("microsoft", "grants", org).stdout.strip().splitlines()
    assert listing[0].split("\t") == ["organization", "group", "origin", "granted", "name"]
    assert [line.split("\t")[:3] + line.split("\t")[4:] for line in listing[1:]] == [
        [org, ENGINEERING, "operator", "Engineering"]
    ]
    assert equa("microsoft", "grants", other).stdout.strip() == "This organization has no grants."

    asyncio.run(link_directly(tmp_path / "data", org, ENGINEERING))
    revoked = equa("microsoft", "revoke-group", org, ENGINEERING)
    assert revoked.exit_code == 0, revoked.output
    assert "has been unlinked" in revoked.stdout
    again = equa("microsoft", "revoke-group", org, ENGINEERING)
    assert again.exit_code == 1
    assert f"equa microsoft grants {org}" in again.output


def test_sync_of_a_group_outside_the_scope_fails_and_a_grant_lets_it_run(equa: Any, tmp_path: Path) -> None:
    org = make_org(equa, "Contoso team")
    asyncio.run(link_directly(tmp_path / "data", org, ENGINEERING))
    listed = equa("microsoft", "grants").stdout
    assert "Linked without a grant" in listed and f"{org}\t{ENGINEERING}" in listed
    refused = equa("sync", org, "--dry-run")
    assert refused.exit_code == 1
    assert f"equa microsoft grant-group {org} {ENGINEERING}" in refused.stdout
    assert equa("microsoft", "grant-group", org, ENGINEERING).exit_code == 0
    allowed = equa("sync", org, "--dry-run")
    assert allowed.exit_code == 0, allowed.output
    assert "Linked without a grant" not in equa("microsoft", "grants").stdout


def test_a_bad_group_scope_stops_the_command_with_one_line(
    equa: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MS_GROUP_SCOPE", "administrative-unit:not-a-guid")
    result = equa("microsoft", "grants")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: MS_GROUP_SCOPE: administrative-unit needs the unit's object id, a GUID "
        "(administrative-unit:00000000-0000-0000-0000-000000000000)"
    ]
