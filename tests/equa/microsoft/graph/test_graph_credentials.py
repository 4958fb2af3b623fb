"""Credential life-cycle: a rotated secret file is picked up without a restart; national clouds get their scope."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from equa.microsoft.graph import GraphAuthenticationFailed, GraphClient
from equa.settings import load_settings


async def test_a_replaced_secret_file_is_used_without_a_restart(
    emu: Any, tmp_path: Path, make_client: Callable[..., GraphClient]
) -> None:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("the-old-secret-that-was-removed\n")
    client = make_client(client_secret=None, client_secret_file=secret_file)

    with pytest.raises(GraphAuthenticationFailed) as caught:
        await client.get("/groups", params={"$top": "1"})
    assert caught.value.code == "AADSTS7000215"

    # The operator writes the new secret's value into the file; the running client signs in with it.
    secret_file.write_text(emu.client_secret + "\n")
    response = await client.get("/groups", params={"$top": "1"})
    assert response.status == 200


async def test_a_secret_given_in_the_environment_is_not_reread(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    client = make_client(client_secret="not-the-secret-value")
    for _ in range(2):
        with pytest.raises(GraphAuthenticationFailed):
            await client.get("/groups", params={"$top": "1"})


@pytest.mark.parametrize(
    ("graph_url", "scope"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"),
        ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default"),
        ("https://dod-graph.microsoft.us/v1.0", "https://dod-graph.microsoft.us/.default"),
        ("https://microsoftgraph.chinacloudapi.cn/v1.0", "https://microsoftgraph.chinacloudapi.cn/.default"),
        ("https://127.0.0.1:8443/v1.0", "https://graph.microsoft.com/.default"),
    ],
)
def test_the_token_scope_follows_the_graph_cloud(graph_url: str, scope: str) -> None:
    settings = load_settings(ms_graph_url=graph_url, ms_auth_client_id="app", ms_auth_tenant_id="tenant")
    assert settings.graph_scope == scope
    assert f"scope={scope.replace(':', '%3A').replace('/', '%2F')}" in (settings.admin_consent_url() or "")


def test_an_explicit_scope_wins() -> None:
    settings = load_settings(ms_graph_scope="https://graph.example/.default")
    assert settings.graph_scope == "https://graph.example/.default"
