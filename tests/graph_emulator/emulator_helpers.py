"""Helpers for emulator tests: a small Graph client, token fetching and error-shape checks."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from graph_emulator.testing import RunningEmulator

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class Graph:
    """A small Graph client for assertions: bearer token, JSON bodies, no retries."""

    def __init__(self, emu: RunningEmulator, token: str) -> None:
        self.emu = emu
        self.token = token
        context = ssl.create_default_context(cafile=str(emu.ca_path))
        self.http = httpx.Client(verify=context, trust_env=False, timeout=30.0)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        url = path if path.startswith("https://") else f"{self.emu.graph_url}{path}"
        return self.http.request(method, url, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


def http_client(emu: RunningEmulator) -> httpx.Client:
    return httpx.Client(
        verify=ssl.create_default_context(cafile=str(emu.ca_path)), trust_env=False, timeout=30.0
    )


def fetch_token(emu: RunningEmulator, client_id: str | None = None, secret: str | None = None) -> str:
    with http_client(emu) as http:
        response = http.post(
            emu.token_url,
            data={
                "client_id": client_id or emu.client_id,
                "client_secret": secret or emu.client_secret,
                "scope": GRAPH_SCOPE,
                "grant_type": "client_credentials",
            },
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


# innerError of a 429, as in the sample of Microsoft's throttling guidance: no client-request-id, status repeated.
THROTTLED_INNER_KEYS = {"code", "date", "message", "request-id", "status"}


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error object, after checking it has Graph's exact shape and echoes the request ids."""
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "innerError"}
    inner = error["innerError"]
    if response.status_code == 429:
        assert set(inner) == THROTTLED_INNER_KEYS
        assert inner["code"] == inner["status"] == "429"
    else:
        assert set(inner) == {"date", "request-id", "client-request-id"}
    assert len(inner["date"]) == 19 and not inner["date"].endswith("Z")
    assert inner["request-id"] == response.headers["request-id"]
    return dict(error)
