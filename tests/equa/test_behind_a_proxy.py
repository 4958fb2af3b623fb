"""Behind a reverse proxy: EQUA_PUBLIC_URL decides the cookie's Secure flag and absolute links; Graph only over https."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from equa.accounts.models import User
from equa.app import create_app
from equa.settings import Settings, SettingsError, load_settings

EQUA = str(Path(sys.executable).with_name("equa"))
PASSWORD = "right-password-1"


async def sign_in_cookie(settings: Settings, email: str, scheme: str) -> str:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver") as http:
            response = await http.post("/api/v1/session", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.headers["set-cookie"]


@pytest.fixture
async def account(make_user: Callable[..., Awaitable[User]]) -> AsyncIterator[User]:
    yield await make_user(password=PASSWORD)


async def test_the_cookie_is_secure_when_the_public_address_is_https_though_the_proxy_speaks_http(
    make_settings: Callable[..., Settings], account: User
) -> None:
    cookie = await sign_in_cookie(
        make_settings(public_url="https://equa.example.com/"), account.email, "http"
    )
    assert "equa_session=" in cookie
    assert "secure" in cookie.lower()


async def test_the_cookie_is_not_secure_when_the_public_address_is_http(
    make_settings: Callable[..., Settings], account: User
) -> None:
    cookie = await sign_in_cookie(
        make_settings(public_url="http://equa.internal:8000"), account.email, "https"
    )
    assert "secure" not in cookie.lower()


async def test_without_a_public_address_the_request_scheme_decides(
    make_settings: Callable[..., Settings], account: User
) -> None:
    assert "secure" in (await sign_in_cookie(make_settings(), account.email, "https")).lower()
    assert "secure" not in (await sign_in_cookie(make_settings(), account.email, "http")).lower()


def test_the_consent_redirect_uri_is_made_absolute_at_the_public_address() -> None:
    settings = load_settings(
        ms_auth_client_id="11111111-1111-1111-1111-111111111111",
        ms_auth_tenant_id="contoso.onmicrosoft.com",
        ms_admin_consent_redirect_uri="/organizations",
        public_url="https://equa.example.com",
    )
    url = settings.admin_consent_url()
    assert url is not None
    assert "redirect_uri=https%3A%2F%2Fequa.example.com%2Forganizations" in url


def test_a_redirect_path_without_a_public_address_stops_start_up(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s" * 20)
    with pytest.raises(SettingsError, match="EQUA_PUBLIC_URL"):
        load_settings(
            ms_auth_enabled=True,
            ms_auth_client_id="11111111-1111-1111-1111-111111111111",
            ms_auth_tenant_id="contoso.onmicrosoft.com",
            ms_auth_secret_file=secret,
            ms_admin_consent_redirect_uri="/organizations",
        )


def test_a_public_address_that_is_not_an_origin_is_refused() -> None:
    with pytest.raises(SettingsError, match="EQUA_PUBLIC_URL"):
        load_settings(public_url="equa.example.com")


def test_graph_over_plain_http_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [EQUA, "serve"],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "EQUA_DATA_DIR": str(tmp_path),
            "EQUA_SECRET_KEY": "proxy-test-key-" + "p" * 30,
            "MS_GRAPH_URL": "http://graph.example.com/v1.0",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "MS_GRAPH_URL" in lines[0] and "https" in lines[0]
