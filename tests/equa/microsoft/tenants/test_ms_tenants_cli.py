"""`equa microsoft check --org ORG_ID` checks that organization's tenant; `equa microsoft connections` lists them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ms_support import seed_group_id
from tenant_support import CONTOSO
from typer.testing import CliRunner

from equa.microsoft.tenants.models import TenantConnection


@pytest.fixture
def equa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph_emulator_multi_tenant: Any) -> Iterator[Any]:
    from equa.cli import app as cli

    emu = graph_emulator_multi_tenant
    env = {
        "EQUA_DATA_DIR": str(tmp_path / "data"),
        "EQUA_SECRET_KEY": "cli-tenant-key-" + "k" * 30,
        "EQUA_PUBLIC_URL": "https://equa.example.com",
        "MS_AUTH_ENABLED": "true",
        "MS_AUTH_CLIENT_ID": emu.client_id,
        "MS_AUTH_TENANT_ID": "organizations",
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


async def connect_directly(data_dir: Path, organization_id: str, tenant_id: str) -> None:
    from equa.db.engine import create_engine_for, create_session_factory

    engine = create_engine_for(f"sqlite+aiosqlite:///{data_dir / 'equa.db'}")
    try:
        async with create_session_factory(engine)() as session:
            session.add(
                TenantConnection(
                    organization_id=uuid.UUID(organization_id),
                    tenant_id=tenant_id,
                    tenant_name="Contoso",
                    tenant_domain="contoso.onmicrosoft.com",
                )
            )
            await session.commit()
    finally:
        await engine.dispose()


def test_check_and_connections_per_organization(equa: Any, tmp_path: Path, emu: Any) -> None:
    organization = make_org(equa, "Contoso team")

    bare = equa("microsoft", "check")
    assert bare.exit_code == 1
    assert "--org ORG_ID" in bare.output

    unconnected = equa("microsoft", "check", "--org", organization)
    assert unconnected.exit_code == 1
    assert "has not connected a Microsoft 365 tenant" in unconnected.output
    assert "No organization has connected" in equa("microsoft", "connections").output

    asyncio.run(connect_directly(tmp_path / "data", organization, CONTOSO))
    checked = equa("microsoft", "check", "--org", organization)
    assert checked.exit_code == 0, checked.output
    assert f"in tenant {CONTOSO}" in checked.output
    assert "The Microsoft 365 connection works." in checked.output

    listed = equa("microsoft", "connections")
    assert listed.exit_code == 0, listed.output
    assert organization in listed.output and CONTOSO in listed.output and "connected" in listed.output

    granted = equa("microsoft", "grant-group", organization, seed_group_id("engineering"))
    assert granted.exit_code == 0, granted.output

    emu.revoke_consent(CONTOSO)
    revoked = equa("microsoft", "check", "--org", organization)
    assert revoked.exit_code == 1
    assert "AADSTS7000229" in revoked.output


def test_the_check_names_organization_read_all_when_a_tenant_did_not_grant_it(
    equa: Any, tmp_path: Path, emu: Any
) -> None:
    from graph_emulator.seeds import MULTI_TENANT_APP_ROLES

    organization = make_org(equa, "Contoso team")
    asyncio.run(connect_directly(tmp_path / "data", organization, CONTOSO))
    # Contoso's consent holds every permission but Organization.Read.All.
    roles = [r for r in MULTI_TENANT_APP_ROLES if r != "Organization.Read.All"]
    emu.set_app_roles(emu.client_id, roles, tenant=CONTOSO)
    try:
        checked = equa("microsoft", "check", "--org", organization)
    finally:
        emu.grant_consent(CONTOSO)

    assert checked.exit_code == 1, checked.output
    assert "Organization.Read.All" in checked.output
