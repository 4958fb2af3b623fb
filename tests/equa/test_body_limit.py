"""EQUA_MAX_BODY_BYTES: oversized bodies are refused with 413 before they are read whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from equa.accounts.models import User
from equa.app import create_app
from equa.settings import Settings

LIMIT = 64 * 1024
CHUNK = 16 * 1024


@pytest.fixture
async def limited_app(make_settings: Callable[..., Settings], clean_database: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(max_body_bytes=LIMIT))
    async with LifespanManager(application):
        yield application


def client_of(application: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver")


def assert_body_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "body_too_large"
    assert str(LIMIT) in problem["detail"]


async def test_a_declared_length_over_the_limit_is_refused_before_the_app_reads_anything(
    limited_app: FastAPI,
) -> None:
    reads = 0

    async def receive() -> dict[str, object]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/session",
        "raw_path": b"/api/v1/session",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"209715200")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    await limited_app(scope, receive, send)

    assert reads == 0
    assert sent[0]["status"] == 413


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(limited_app: FastAPI) -> None:
    produced = 0

    async def two_hundred_megabytes() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(200 * 1024 * 1024 // CHUNK):
            produced += CHUNK
            yield b" " * CHUNK

    async with client_of(limited_app) as http:
        response = await http.post(
            "/api/v1/session", content=two_hundred_megabytes(), headers={"content-type": "application/json"}
        )

    assert_body_too_large(response)
    assert produced <= LIMIT + 2 * CHUNK  # the rest of the 200 MB was never read


async def test_a_body_under_the_limit_still_works(limited_app: FastAPI) -> None:
    async with client_of(limited_app) as http:
        response = await http.post("/api/v1/session", json={"email": "a@example.com", "password": "x" * 1000})
    assert response.status_code == 401


async def test_the_default_limit_refuses_a_two_megabyte_sign_in(
    client: httpx.AsyncClient, make_user: Callable[..., Awaitable[User]]
) -> None:
    user = await make_user(password="right-password-1")
    response = await client.post(
        "/api/v1/session",
        content=b'{"email": "' + user.email.encode() + b'", "password": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
