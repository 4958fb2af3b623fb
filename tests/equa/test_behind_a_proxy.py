"""Behind a reverse proxy: EQUA_PUBLIC_URL decides the cookie's Secure flag and absolute links; `equa serve` trusts
X-Forwarded-For and X-Forwarded-Proto from EQUA_FORWARDED_ALLOW_IPS only; Graph only over https."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from served_support import ADMIN_PASSWORD, served_installation

from equa.accounts.models import User
from equa.app import create_app
from equa.organizations.models import Organization
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


def sign_in_through_proxy(
    http: httpx.Client, email: str, password: str, client_address: str, scheme: str = "http"
) -> httpx.Response:
    """A sign-in as a reverse proxy on this host passes it on: the caller's address and scheme in X-Forwarded-*."""
    return http.post(
        "/api/v1/session",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": client_address, "X-Forwarded-Proto": scheme},
    )


def test_equa_serve_takes_the_client_address_and_scheme_from_a_trusted_proxy(tmp_path: Path) -> None:
    with (
        served_installation(tmp_path, "proxied@example.com", EQUA_FORWARDED_ALLOW_IPS="127.0.0.1") as (
            served,
            organization,
        ),
        httpx.Client(base_url=served.base_url, timeout=30) as http,
    ):
        for attempt in range(5):
            guess = sign_in_through_proxy(http, f"nobody-{attempt}@example.com", "guess", "192.0.2.10")
            assert guess.status_code == 401
        from_the_guesser = sign_in_through_proxy(http, organization.admin_email, ADMIN_PASSWORD, "192.0.2.10")
        from_elsewhere = sign_in_through_proxy(
            http, organization.admin_email, ADMIN_PASSWORD, "192.0.2.11", scheme="https"
        )

    # The throttle counted the guesses against the caller's address, not against the proxy's.
    assert from_the_guesser.status_code == 429
    assert from_elsewhere.status_code == 200
    assert "secure" in from_elsewhere.headers["set-cookie"].lower()  # the caller came over https


def test_equa_serve_ignores_forwarded_headers_from_an_address_it_does_not_trust(tmp_path: Path) -> None:
    with (
        served_installation(
            tmp_path, "unproxied.admin@example.com", EQUA_FORWARDED_ALLOW_IPS="192.0.2.250"
        ) as (served, organization),
        httpx.Client(base_url=served.base_url, timeout=30) as http,
    ):
        claimed_https = sign_in_through_proxy(
            http, organization.admin_email, ADMIN_PASSWORD, "192.0.2.11", scheme="https"
        )
        for attempt in range(5):
            guess = sign_in_through_proxy(
                http, f"nobody-{attempt}@example.com", "guess", f"192.0.2.{attempt}"
            )
            assert guess.status_code == 401
        after_the_guesses = sign_in_through_proxy(
            http, organization.admin_email, ADMIN_PASSWORD, "192.0.2.99"
        )

    assert claimed_https.status_code == 200
    assert "secure" not in claimed_https.headers["set-cookie"].lower()
    # Every request counts as coming from 127.0.0.1, whatever X-Forwarded-For claims.
    assert after_the_guesses.status_code == 429


async def test_an_invitation_link_is_at_the_public_address_not_the_one_the_proxy_called(
    make_settings: Callable[..., Settings],
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    admin = await make_user()
    organization = await make_org(admin)
    headers = await bearer(admin)
    application = create_app(make_settings(public_url="https://equa.example.com"))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as http:
            answer = await http.post(
                f"/api/v1/organizations/{organization.id}/members",
                json={"email": "someone.new@example.com"},
                headers=headers,
            )

    assert answer.status_code == 201, answer.text
    assert answer.json()["invitationUrl"].startswith("https://equa.example.com/invitations/inv_")
