"""`equa microsoft check`: a diagnosis with one line per check and the fix for each failure."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from equa.microsoft.cli import microsoft_app
from equa.microsoft.graph.diagnose import diagnose
from equa.settings import load_settings


def _env(emu: Any, **changes: str) -> dict[str, str]:
    env = {
        "MS_AUTH_CLIENT_ID": emu.client_id,
        "MS_AUTH_TENANT_ID": emu.tenant_id,
        "MS_AUTH_SECRET": emu.client_secret,
        "MS_AUTHORITY_HOST": emu.base_url,
        "MS_GRAPH_URL": emu.graph_url,
        "MS_CA_BUNDLE": str(emu.ca_path),
    }
    env.update(changes)
    return env


async def test_healthy_connection_passes_every_check(emu: Any) -> None:
    settings = load_settings(
        ms_auth_client_id=emu.client_id,
        ms_auth_tenant_id=emu.tenant_id,
        ms_auth_secret=emu.client_secret,
        ms_authority_host=emu.base_url,
        ms_graph_url=emu.graph_url,
        ms_ca_bundle=emu.ca_path,
    )
    diagnosis = await diagnose(settings)
    assert diagnosis.ok, diagnosis.checks
    assert {c.name for c in diagnosis.checks} >= {"credentials", "admin consent", "read groups"}


async def test_missing_consent_fails_with_the_consent_url(emu: Any) -> None:
    settings = load_settings(
        ms_auth_client_id=emu.unconsented_client_id,
        ms_auth_tenant_id=emu.tenant_id,
        ms_auth_secret=emu.unconsented_client_secret,
        ms_authority_host=emu.base_url,
        ms_graph_url=emu.graph_url,
        ms_ca_bundle=emu.ca_path,
    )
    diagnosis = await diagnose(settings)
    failed = {c.name: c for c in diagnosis.checks if not c.ok}
    assert "admin consent" in failed
    assert settings.admin_consent_url() in (failed["admin consent"].action or "")


def test_missing_configuration_is_reported_without_network() -> None:
    runner = CliRunner()
    result = runner.invoke(microsoft_app, ["check"], env={"MS_AUTH_CLIENT_ID": "", "MS_AUTH_TENANT_ID": ""})
    assert result.exit_code == 1
    assert "MS_AUTH_CLIENT_ID" in result.output


def test_cli_check_exits_non_zero_on_a_wrong_secret(emu: Any) -> None:
    canary = "wrong-secret-canary-0123456789"
    result = CliRunner().invoke(microsoft_app, ["check"], env=_env(emu, MS_AUTH_SECRET=canary))
    assert result.exit_code == 1
    assert "AADSTS7000215" in result.output
    assert "Value, not its Secret ID" in result.output
    assert canary not in result.output


def test_cli_check_passes_on_a_working_connection(emu: Any) -> None:
    result = CliRunner().invoke(microsoft_app, ["check"], env=_env(emu))
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output


async def test_the_administrative_unit_of_the_group_scope_is_checked(emu: Any) -> None:
    from graph_emulator.seeds import APP_ROLES

    def settings_for(unit: str) -> Any:
        return load_settings(
            ms_auth_client_id=emu.client_id,
            ms_auth_tenant_id=emu.tenant_id,
            ms_auth_secret=emu.client_secret,
            ms_authority_host=emu.base_url,
            ms_graph_url=emu.graph_url,
            ms_ca_bundle=emu.ca_path,
            ms_group_scope=f"administrative-unit:{unit}",
        )

    name = "administrative unit (MS_GROUP_SCOPE)"
    unit = emu.add_administrative_unit(displayName="Diagnosed unit")["id"]
    good = await diagnose(settings_for(unit))
    assert good.ok, good.checks
    assert "Diagnosed unit" in next(c for c in good.checks if c.name == name).detail

    missing = await diagnose(settings_for("0b0b0b0b-0000-4000-8000-000000000000"))
    assert "Admin units" in (next(c for c in missing.checks if c.name == name and not c.ok).action or "")

    emu.set_app_roles(
        emu.client_id, [r for r in APP_ROLES if not r.startswith(("AdministrativeUnit", "Directory"))]
    )
    try:
        denied = await diagnose(settings_for(unit))
    finally:
        emu.set_app_roles(emu.client_id, list(APP_ROLES))
    assert "AdministrativeUnit.Read.All" in (
        next(c for c in denied.checks if c.name == name and not c.ok).action or ""
    )
