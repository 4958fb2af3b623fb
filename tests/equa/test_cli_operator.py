"""Operator commands: one-line configuration errors, --data-dir, listing/revoking/expiring API tokens."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import update
from typer.testing import CliRunner

from equa.accounts.models import ApiToken
from equa.app import create_app
from equa.cli import app
from equa.db.base import utcnow
from equa.db.engine import create_engine_for
from equa.settings import load_settings

EQUA = str(Path(sys.executable).with_name("equa"))
MICROSOFT = {
    "MS_AUTH_ENABLED": "true",
    "MS_AUTH_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
    "MS_AUTH_TENANT_ID": "22222222-2222-2222-2222-222222222222",
    "MS_AUTH_SECRET": "not-a-real-secret-value",
}
CREDENTIAL = "a credential (one of MS_AUTH_SECRET, MS_AUTH_SECRET_FILE or MS_AUTH_CERTIFICATE_PATH)"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"EQUA_DATA_DIR": str(tmp_path / "data"), "EQUA_SECRET_KEY": "cli-test-key-" + "c" * 30}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("EQUA_DATABASE_URL", "EQUA_API_TOKEN_MAX_AGE_DAYS", *MICROSOFT):
        monkeypatch.delenv(name, raising=False)
    return env


def run_equa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("MS_", "EQUA_"))}
    return subprocess.run([EQUA, *args], capture_output=True, text=True, timeout=60, env={**clean, **env})


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        (["MS_AUTH_CLIENT_ID"], "MS_AUTH_CLIENT_ID is not set"),
        (["MS_AUTH_TENANT_ID"], "MS_AUTH_TENANT_ID is not set"),
        (["MS_AUTH_SECRET"], f"{CREDENTIAL} is not set"),
        (["MS_AUTH_CLIENT_ID", "MS_AUTH_TENANT_ID"], "MS_AUTH_CLIENT_ID and MS_AUTH_TENANT_ID are not set"),
        (
            ["MS_AUTH_CLIENT_ID", "MS_AUTH_TENANT_ID", "MS_AUTH_SECRET"],
            f"MS_AUTH_CLIENT_ID, MS_AUTH_TENANT_ID and {CREDENTIAL} are not set",
        ),
    ],
)
@pytest.mark.parametrize("command", [["microsoft", "check"], ["serve"]])
def test_a_half_configured_microsoft_setup_is_one_line_and_exit_status_2(
    cli_env: dict[str, str], unset: list[str], named: str, command: list[str]
) -> None:
    env = {**cli_env, **{k: v for k, v in MICROSOFT.items() if k not in unset}}
    result = run_equa(env, *command)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: MS_AUTH_ENABLED is true but {named}"]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MS_AUTH_SECRET_FILE", "/nonexistent/secret", "MS_AUTH_SECRET_FILE points to /nonexistent/secret"),
        (
            "MS_AUTH_CERTIFICATE_PATH",
            "/nonexistent/cert.pem",
            "MS_AUTH_CERTIFICATE_PATH points to /nonexistent/cert.pem",
        ),
        ("MS_CA_BUNDLE", "/nonexistent/ca.pem", "MS_CA_BUNDLE points to /nonexistent/ca.pem"),
        ("MS_AUTHORITY_HOST", "http://login.example", "MS_AUTHORITY_HOST must be an https:// URL"),
    ],
)
def test_microsoft_check_names_a_wrong_path_or_host_in_one_line(
    cli_env: dict[str, str], variable: str, value: str, message: str
) -> None:
    env = {**cli_env, **MICROSOFT, variable: value}
    if variable != "MS_CA_BUNDLE" and variable != "MS_AUTHORITY_HOST":
        del env["MS_AUTH_SECRET"]
    result = run_equa(env, "microsoft", "check")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr


def test_data_dir_points_every_command_at_one_database(cli_env: dict[str, str], tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    assert run_equa(cli_env, "--data-dir", str(elsewhere), "db", "upgrade").returncode == 0
    assert (elsewhere / "equa.db").is_file()
    created = run_equa(cli_env, "--data-dir", str(elsewhere), "users", "create", "op@example.com")
    assert created.returncode == 0, created.stderr
    token = run_equa(cli_env, "--data-dir", str(elsewhere), "tokens", "create", "op@example.com")
    assert token.returncode == 0 and token.stdout.startswith("equa_"), token.stderr
    listed = run_equa(cli_env, "--data-dir", str(elsewhere), "tokens", "list", "op@example.com")
    assert listed.returncode == 0 and token.stdout.strip()[:12] in listed.stdout

    # Without the option the default data directory is used, and the error says how to point elsewhere.
    default = run_equa(cli_env, "tokens", "create", "op@example.com")
    assert default.returncode == 1
    assert "equa db upgrade" in default.stderr and "--data-dir" in default.stderr
    assert str(Path(cli_env["EQUA_DATA_DIR"]).resolve() / "equa.db") in default.stderr


def _equa(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def _status(token: str) -> int:
    async def ask() -> int:
        web = create_app(load_settings())
        async with (
            LifespanManager(web),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://t") as client,
        ):
            return (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code

    return asyncio.run(ask())


def test_an_operator_lists_and_revokes_api_tokens(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    _equa(runner, "db", "upgrade")
    _equa(runner, "users", "create", "ann@example.com")
    _equa(runner, "users", "create", "bob@example.com")
    assert "bob@example.com has no API tokens." in _equa(runner, "tokens", "list", "bob@example.com")
    laptop = _equa(runner, "tokens", "create", "ann@example.com", "--name", "laptop").strip()
    ci = _equa(runner, "tokens", "create", "ann@example.com", "--name", "ci").strip()

    listed = _equa(runner, "tokens", "list", "ann@example.com").splitlines()
    assert listed[0].split() == ["ID", "NAME", "PREFIX", "CREATED", "LAST", "USED", "EXPIRES", "STATE"]
    rows = {line.split()[1]: line for line in listed[1:]}
    assert set(rows) == {"laptop", "ci"}
    assert laptop not in "\n".join(listed) and ci not in "\n".join(listed)  # only the prefix is shown
    assert rows["laptop"].split()[2] == laptop[:12] + "…"
    assert rows["laptop"].split()[-2:] == ["never", "active"]
    assert _status(laptop) == 200 and _status(ci) == 200

    laptop_id = rows["laptop"].split()[0]
    said = _equa(runner, "tokens", "revoke", laptop_id)
    assert f"{laptop[:12]}… (laptop) of ann@example.com revoked" in said
    assert "already revoked" in _equa(runner, "tokens", "revoke", laptop_id)
    assert _status(laptop) == 401 and _status(ci) == 200
    rows = {
        line.split()[1]: line for line in _equa(runner, "tokens", "list", "ann@example.com").splitlines()[1:]
    }
    assert rows["laptop"].endswith("revoked") and rows["ci"].endswith("active")

    assert "does not exist" in _equa(
        runner, "tokens", "revoke", "00000000-0000-0000-0000-000000000000", code=1
    )
    assert "TOKEN_ID: not a token id" in _equa(runner, "tokens", "revoke", "laptop", code=1)
    assert "equa users create" in _equa(runner, "tokens", "list", "nobody@example.com", code=1)


def test_api_tokens_expire_after_the_maximum_age(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    _equa(runner, "db", "upgrade")
    _equa(runner, "users", "create", "ann@example.com")
    old = _equa(runner, "tokens", "create", "ann@example.com", "--name", "old").strip()
    new = _equa(runner, "tokens", "create", "ann@example.com", "--name", "new").strip()

    async def age(name: str, days: int) -> None:
        engine = create_engine_for(load_settings().resolved_database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(ApiToken)
                    .where(ApiToken.name == name)
                    .values(created_at=utcnow() - timedelta(days=days))
                )
        finally:
            await engine.dispose()

    asyncio.run(age("old", 31))
    asyncio.run(age("new", 29))
    assert _status(old) == 200  # no maximum age: tokens live until revoked

    monkeypatch.setenv("EQUA_API_TOKEN_MAX_AGE_DAYS", "30")
    assert _status(old) == 401 and _status(new) == 200
    rows = {
        line.split()[1]: line for line in _equa(runner, "tokens", "list", "ann@example.com").splitlines()[1:]
    }
    assert rows["old"].endswith("expired") and rows["new"].endswith("active")
    created, _used, expires = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\dZ", rows["new"])
    span = datetime.strptime(expires, "%Y-%m-%d %H:%MZ") - datetime.strptime(created, "%Y-%m-%d %H:%MZ")
    assert span == timedelta(days=30)

    async def listed_by_api() -> list[dict[str, object]]:
        web = create_app(load_settings())
        async with (
            LifespanManager(web),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://t") as client,
        ):
            answer = await client.get("/api/v1/me/tokens", headers={"Authorization": f"Bearer {new}"})
            assert answer.status_code == 200
            return list(answer.json())

    for token in asyncio.run(listed_by_api()):
        created = datetime.fromisoformat(str(token["createdAt"]))
        assert datetime.fromisoformat(str(token["expiresAt"])) - created == timedelta(days=30)
    created_now = _equa(runner, "tokens", "create", "ann@example.com")
    assert "expires in 30 day(s)" in created_now
