"""The `equa` command: fast help, migrations, users, organizations, tokens, and refusing an unmigrated database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from typer.testing import CliRunner

from equa.accounts.sessions import SESSION_COOKIE
from equa.app import create_app
from equa.cli import app
from equa.settings import load_settings

EQUA = str(Path(sys.executable).with_name("equa"))


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"EQUA_DATA_DIR": str(tmp_path / "data"), "EQUA_SECRET_KEY": "cli-test-key-" + "c" * 30}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("EQUA_DATABASE_URL", raising=False)
    return env


def test_help_answers(cli_env: dict[str, str]) -> None:
    started = time.perf_counter()
    result = subprocess.run([EQUA, "--help"], capture_output=True, text=True, timeout=30)
    elapsed = time.perf_counter() - started
    print(f"`equa --help` took {elapsed:.3f}s")
    assert result.returncode == 0
    for command in ("serve", "db", "users", "orgs", "tokens"):
        assert command in result.stdout


def test_serve_refuses_an_unmigrated_database(cli_env: dict[str, str]) -> None:
    result = subprocess.run([EQUA, "serve", "--port", "0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "equa db upgrade" in result.stderr


def test_serve_reports_a_missing_microsoft_setting_in_one_line(cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [EQUA, "serve"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**cli_env, "MS_AUTH_ENABLED": "true"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: MS_AUTH_ENABLED is true but MS_AUTH_CLIENT_ID, MS_AUTH_TENANT_ID and a credential "
        "(one of MS_AUTH_SECRET, MS_AUTH_SECRET_FILE or MS_AUTH_CERTIFICATE_PATH) are not set"
    ]


def test_accounts_and_organizations_from_the_command_line(cli_env: dict[str, str]) -> None:
    runner = CliRunner()

    def equa(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    assert runner.invoke(app, ["users", "create", "a@example.com"]).exit_code == 1  # not migrated yet
    equa("db", "upgrade")
    equa("users", "create", "Ann@Example.com", "--name", "Ann", "--password", "pw-123456")
    duplicate = runner.invoke(app, ["users", "create", "ann@example.com"])
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.output

    org_id = equa("orgs", "create", "Acme", "--admin", "ann@example.com")
    assert len(org_id) == 36
    assert "is now member of Acme" in equa(
        "orgs", "add-member", org_id, "bob@example.com", "--role", "member"
    )
    bad_role = runner.invoke(app, ["orgs", "add-member", org_id, "c@example.com", "--role", "owner"])
    assert bad_role.exit_code != 0
    unknown_admin = runner.invoke(app, ["orgs", "create", "X", "--admin", "nobody@example.com"])
    assert unknown_admin.exit_code == 1
    assert "equa users create" in unknown_admin.output

    token = equa("tokens", "create", "ann@example.com")
    assert token.startswith("equa_")


def test_users_create_platform_admin_makes_an_operator(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    for email, flags in (("op@example.com", ["--platform-admin"]), ("plain@example.com", [])):
        created = runner.invoke(app, ["users", "create", email, "--password", "pw-123456", *flags])
        assert created.exit_code == 0, created.output
    web = create_app(load_settings())

    async def operators(emails: list[str]) -> list[bool]:
        answers = []
        async with LifespanManager(web):
            for email in emails:
                transport = httpx.ASGITransport(app=web)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    login = {"email": email, "password": "pw-123456"}
                    assert (await client.post("/api/v1/session", json=login)).status_code == 200
                    answers.append(bool((await client.get("/api/v1/me")).json()["isPlatformAdmin"]))
        return answers

    assert asyncio.run(operators(["op@example.com", "plain@example.com"])) == [True, False]


def test_an_operator_signs_a_person_out_everywhere(cli_env: dict[str, str]) -> None:
    runner = CliRunner()

    def equa(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    equa("db", "upgrade")
    equa("users", "create", "lost-laptop@example.com", "--password", "pw-123456")
    token = equa("tokens", "create", "lost-laptop@example.com")
    web = create_app(load_settings())
    login = {"email": "lost-laptop@example.com", "password": "pw-123456"}

    async def answers(cookies: list[str]) -> list[int]:
        """/me for each browser cookie, then for the API token."""
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://t") as client:
            by_cookie = [
                (await client.get("/api/v1/me", cookies={SESSION_COOKIE: c})).status_code for c in cookies
            ]
            by_token = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        return [*by_cookie, by_token.status_code]

    async def sign_in_on_two_browsers() -> list[str]:
        cookies = []
        async with LifespanManager(web):
            for _ in range(2):
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=web), base_url="http://t"
                ) as browser:
                    assert (await browser.post("/api/v1/session", json=login)).status_code == 200
                    cookies.append(browser.cookies[SESSION_COOKIE])
            assert await answers(cookies) == [200, 200, 200]
        return cookies

    async def answers_now(cookies: list[str]) -> list[int]:
        async with LifespanManager(web):
            return await answers(cookies)

    cookies = asyncio.run(sign_in_on_two_browsers())
    said = equa("users", "sign-out", "lost-laptop@example.com", "--tokens")
    assert "2 browser session(s) ended, 1 API token(s) revoked" in said
    assert asyncio.run(answers_now(cookies)) == [401, 401, 401]
    unknown = runner.invoke(app, ["users", "sign-out", "nobody@example.com"])
    assert unknown.exit_code == 1 and "equa users create" in unknown.output
