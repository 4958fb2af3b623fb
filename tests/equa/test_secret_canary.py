"""A canary in every secret setting appears in no log line and no response, even when requests fail."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request

from equa.accounts.models import User
from equa.app import create_app
from equa.logging_setup import configure_logging
from equa.settings import LogFormat, Settings

CANARIES = {
    "ms_auth_secret": "canary-ms-auth-secret-5a1f0c",
    "secret_key": "canary-session-key-9d3e77-aaaaaaaaaaaaaaaaaaaaaaaa",
    "metrics_token": "canary-metrics-token-41c2bb",
    "secret_file": "canary-secret-file-7e8d21",
}


@pytest.fixture(params=[LogFormat.TEXT, LogFormat.JSON])
def canary_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], tmp_path: Path
) -> Settings:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CANARIES["secret_file"] + "\n")
    return make_settings(
        ms_auth_secret=CANARIES["ms_auth_secret"],
        ms_auth_secret_file=secret_file,
        secret_key=CANARIES["secret_key"],
        metrics_token=CANARIES["metrics_token"],
        log_format=request.param,
    )


def _add_leaky_routes(app: FastAPI, settings: Settings) -> None:
    """Routes that do what careless code would: log secrets and fail with them in the exception text."""
    log = logging.getLogger("equa.test.leaky")

    async def log_secrets(request: Request) -> dict[str, str]:
        secret = settings.client_secret()
        assert secret is not None
        log.warning("token request failed: client_secret=%s", secret.get_secret_value())
        log.info("headers were %s", dict(request.headers))
        log.info("settings: %r / %s", settings, settings.session_secret.get_secret_value())
        return {"status": "logged"}

    async def fail_with_secret() -> None:
        raise RuntimeError(
            f"upstream refused secret {CANARIES['ms_auth_secret']} and {CANARIES['metrics_token']}"
        )

    app.add_api_route("/leaky/log", log_secrets)
    app.add_api_route("/leaky/fail", fail_with_secret)


@pytest.fixture
async def captured_log(canary_settings: Settings) -> AsyncIterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(canary_settings, stream=stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


async def test_no_canary_in_logs_or_responses(
    canary_settings: Settings,
    captured_log: io.StringIO,
    clean_database: str,
    make_user: Callable[..., Awaitable[User]],
) -> None:
    app = create_app(canary_settings)
    _add_leaky_routes(app, canary_settings)
    async with LifespanManager(app):
        # The canary user is created with the app's session factory; the make_user fixture uses another app.
        factory = app.state.session_factory
        from equa.accounts.service import create_user

        async with factory() as session:
            user = await create_user(session, "canary@example.com", "Canary", "pw-123456")
            await session.commit()
        responses = await _exercise(app, user)

    log_text = captured_log.getvalue()
    assert "token request failed" in log_text  # the leaky routes really logged
    assert "RuntimeError" in log_text  # and the failure's traceback was logged
    if canary_settings.log_format == LogFormat.JSON:
        for line in log_text.splitlines():
            if line.startswith("{"):
                json.loads(line)
    for name, canary in CANARIES.items():
        assert canary not in log_text, f"{name} leaked into the log"
        for response in responses:
            assert canary not in response.text, f"{name} leaked into {response.request.url}"
            assert canary not in str(response.headers), f"{name} leaked into headers"
    assert "***" in log_text


async def _exercise(app: FastAPI, user: User) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        signed_in = await http.post("/api/v1/session", json={"email": user.email, "password": "pw-123456"})
        responses.append(signed_in)
        for canary in CANARIES.values():
            responses.append(await http.get("/api/v1/me", headers={"Authorization": f"Bearer {canary}"}))
            responses.append(
                await http.post("/api/v1/session", json={"email": user.email, "password": canary})
            )
            responses.append(await http.post("/api/v1/organizations", json={"name": canary * 300}))
        responses.append(
            await http.get("/leaky/log", headers={"Authorization": f"Bearer {CANARIES['secret_key']}"})
        )
        responses.append(await http.get("/leaky/fail"))
        responses.append(await http.get(f"/leaky/log?access_token={CANARIES['metrics_token']}"))
    assert responses[-2].status_code == 500
    return responses
