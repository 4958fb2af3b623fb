"""Browser sign-in with the signed session cookie, CSRF protection, and sign-out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from equa.accounts.models import BrowserSessionRecord, User
from equa.accounts.sessions import SESSION_COOKIE
from equa.db.base import utcnow

MakeUser = Callable[..., Awaitable[User]]


async def test_sign_in_sets_a_protected_cookie_and_returns_a_csrf_token(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("Ann@Example.com", password="correct horse", display_name="Ann")
    response = await client.post(
        "/api/v1/session", json={"email": "ann@EXAMPLE.com", "password": "correct horse"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["id"] == str(user.id)
    assert body["user"]["email"] == "Ann@Example.com"
    assert len(body["csrfToken"]) >= 32
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here
    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["displayName"] == "Ann"


async def test_cookie_is_secure_over_https(app: object, make_user: MakeUser) -> None:
    await make_user("sec@example.com", password="pw-123456")
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as https_client:
        response = await https_client.post(
            "/api/v1/session", json={"email": "sec@example.com", "password": "pw-123456"}
        )
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


async def test_state_changing_request_without_csrf_token_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser, sign_in: Callable[[User, str], Awaitable[str]]
) -> None:
    user = await make_user(password="pw-123456")
    csrf_token = await sign_in(user, "pw-123456")

    refused = await client.post("/api/v1/organizations", json={"name": "No token"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    wrong = await client.post(
        "/api/v1/organizations", json={"name": "Bad"}, headers={"X-CSRF-Token": "forged"}
    )
    assert wrong.status_code == 403
    assert (await client.get("/api/v1/organizations")).json() == []  # nothing was created

    accepted = await client.post(
        "/api/v1/organizations", json={"name": "With token"}, headers={"X-CSRF-Token": csrf_token}
    )
    assert accepted.status_code == 201
    assert [o["name"] for o in (await client.get("/api/v1/organizations")).json()] == ["With token"]


async def test_csrf_token_accepted_as_form_field(
    client: httpx.AsyncClient, make_user: MakeUser, sign_in: Callable[[User, str], Awaitable[str]]
) -> None:
    user = await make_user(password="pw-123456")
    csrf_token = await sign_in(user, "pw-123456")
    tokens = await client.get("/api/v1/me/tokens")
    assert tokens.status_code == 200
    # A form post reaches the CSRF check (which reads the form) before the JSON body check fails.
    refused = await client.post("/api/v1/me/tokens", data={"name": "x"})
    assert refused.status_code == 403
    passed_csrf = await client.post("/api/v1/me/tokens", data={"name": "x", "csrf_token": csrf_token})
    assert passed_csrf.status_code == 422


async def test_wrong_password_unknown_email_and_invited_user_get_the_same_answer(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("real@example.com", password="right-password")
    await make_user("invited@example.com")  # no password yet
    attempts = [
        {"email": "real@example.com", "password": "wrong-password"},
        {"email": "nobody@example.com", "password": "right-password"},
        {"email": "invited@example.com", "password": "anything"},
    ]
    for attempt in attempts:
        response = await client.post("/api/v1/session", json=attempt)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"
        assert "set-cookie" not in response.headers


async def test_sign_out_ends_the_session(
    client: httpx.AsyncClient, make_user: MakeUser, sign_in: Callable[[User, str], Awaitable[str]]
) -> None:
    user = await make_user(password="pw-123456")
    await sign_in(user, "pw-123456")
    assert (await client.get("/api/v1/me")).status_code == 200
    out = await client.delete("/api/v1/session")
    assert out.status_code == 204
    after = await client.get("/api/v1/me")
    assert after.status_code == 401
    assert after.headers["www-authenticate"] == "Bearer"


async def test_tampered_cookie_is_not_a_session(
    client: httpx.AsyncClient, make_user: MakeUser, sign_in: Callable[[User, str], Awaitable[str]]
) -> None:
    user = await make_user(password="pw-123456")
    await sign_in(user, "pw-123456")
    value = client.cookies[SESSION_COOKIE]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_a_copied_cookie_is_refused_once_its_session_signed_out(
    client: httpx.AsyncClient, make_user: MakeUser, sign_in: Callable[[User, str], Awaitable[str]]
) -> None:
    user = await make_user(password="pw-123456")
    await sign_in(user, "pw-123456")
    copied = client.cookies[SESSION_COOKIE]  # e.g. lifted from a shared computer
    assert (await client.delete("/api/v1/session")).status_code == 204

    client.cookies.set(SESSION_COOKIE, copied)
    api = await client.get("/api/v1/me")
    assert api.status_code == 401
    assert "sign in again" in api.json()["detail"].lower()
    page = await client.get("/organizations")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


async def test_signing_out_one_browser_leaves_the_others_signed_in(app: object, make_user: MakeUser) -> None:
    await make_user("two@example.com", password="pw-123456")
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as laptop,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as phone,
    ):
        for browser in (laptop, phone):
            signed_in = await browser.post(
                "/api/v1/session", json={"email": "two@example.com", "password": "pw-123456"}
            )
            assert signed_in.status_code == 200
        assert (await laptop.delete("/api/v1/session")).status_code == 204
        assert (await laptop.get("/api/v1/me")).status_code == 401
        assert (await phone.get("/api/v1/me")).status_code == 200


async def test_an_expired_or_deactivated_session_is_refused(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    sign_in: Callable[[User, str], Awaitable[str]],
    session_factory: Any,
) -> None:
    user = await make_user(password="pw-123456")
    await sign_in(user, "pw-123456")
    assert (await client.get("/api/v1/me")).status_code == 200
    async with session_factory() as db:
        await db.execute(
            update(BrowserSessionRecord)
            .where(BrowserSessionRecord.user_id == user.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
    assert (await client.get("/api/v1/me")).status_code == 401

    await sign_in(user, "pw-123456")
    async with session_factory() as db:
        await db.execute(update(User).where(User.id == user.id).values(is_active=False))
        await db.commit()
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_signing_in_again_tidies_the_persons_ended_sessions(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    sign_in: Callable[[User, str], Awaitable[str]],
    session_factory: Any,
) -> None:
    user = await make_user(password="pw-123456")
    for _ in range(3):
        await sign_in(user, "pw-123456")
        assert (await client.delete("/api/v1/session")).status_code == 204
    await sign_in(user, "pw-123456")
    async with session_factory() as db:
        rows = list(
            await db.scalars(select(BrowserSessionRecord).where(BrowserSessionRecord.user_id == user.id))
        )
    assert len(rows) == 1 and rows[0].revoked_at is None
