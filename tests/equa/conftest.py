"""Fixtures for the equa package's tests: signing in through the browser session flow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from equa.accounts.models import User


@pytest.fixture
def sign_in(client: httpx.AsyncClient) -> Callable[[User, str], Awaitable[str]]:
    """Sign `user` in on `client` (the cookie is kept by the client); returns the session's CSRF token."""

    async def do_sign_in(user: User, password: str) -> str:
        response = await client.post("/api/v1/session", json={"email": user.email, "password": password})
        assert response.status_code == 200, response.text
        token: str = response.json()["csrfToken"]
        return token

    return do_sign_in
