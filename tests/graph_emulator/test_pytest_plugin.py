"""The `graph_emulator` fixture of `-p graph_emulator.pytest_plugin` (pyproject's addopts loads it here), used the
way another project's tests would: msal + httpx, azure-identity, faults and lag. test_standalone_use.py runs the
plugin and the console script from a project of their own."""

from __future__ import annotations

import httpx
import msal
from azure.identity import ClientSecretCredential


def test_msal_and_httpx_read_the_seeded_tenant(graph_emulator):
    app = msal.ConfidentialClientApplication(**graph_emulator.msal_settings())
    token = app.acquire_token_for_client([graph_emulator.scope])["access_token"]
    with httpx.Client(
        **graph_emulator.httpx_settings(), headers={"Authorization": f"Bearer {token}"}
    ) as graph:
        groups = graph.get("/groups", params={"$select": "displayName"}).json()["value"]
        assert "Engineering" in {g["displayName"] for g in groups}
        created = graph.post(
            "/groups",
            json={
                "displayName": "Plugin",
                "mailEnabled": False,
                "mailNickname": "plugin",
                "securityEnabled": True,
            },
        )
        assert created.status_code == 201
        graph_emulator.set_lag(30)  # whatever the machine's load, the new group is still replicating
        assert graph.get(f"/groups/{created.json()['id']}").status_code == 404
        graph_emulator.replicate_now()
        assert graph.get(f"/groups/{created.json()['id']}").status_code == 200


def test_azure_identity_and_faults(graph_emulator):
    credential = ClientSecretCredential(**graph_emulator.azure_identity_settings())
    token = credential.get_token(graph_emulator.scope).token
    graph_emulator.set_faults(rate_503=1.0, retry_after_on_503=True)
    with httpx.Client(
        **graph_emulator.httpx_settings(), headers={"Authorization": f"Bearer {token}"}
    ) as graph:
        assert graph.get("/groups").status_code == 503
        graph_emulator.set_faults()
        assert graph.get("/groups").status_code == 200
    assert graph_emulator.stats()["faults_injected"] == {"503": 1}


def test_instant_consistency_by_name(graph_emulator_instant):
    assert graph_emulator_instant.control.consistency()["effective_lag_seconds"] == 0


def test_each_test_starts_from_the_seed(graph_emulator):
    assert graph_emulator.find_groups(displayName="Plugin") == []
    assert graph_emulator.control.consistency()["lag_seconds"] == 1.0
