"""One Graph client per tenant, bounded and dropped when idle; multi-tenant mode's settings."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from equa.microsoft.graph import GraphAuthenticationFailed, GraphClient, GraphConfig, TokenProvider
from equa.microsoft.graph.tenant_clients import TenantClients
from equa.settings import SettingsError, load_settings

CONFIG = GraphConfig(
    client_id="3f2b8c1a-5d4e-4b7a-9c6f-1e2d3a4b5c6d",
    tenant_id="organizations",
    authority_host="https://login.example.test",
    graph_url="https://graph.example.test/v1.0",
    client_secret="not-a-real-secret",
    admin_consent_url="https://login.example.test/organizations/v2.0/adminconsent?client_id=x",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_each_tenant_gets_its_own_client_sharing_the_gate_pacer_and_pool() -> None:
    async with GraphClient(CONFIG, TokenProvider(CONFIG)) as root:
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        first = root.for_tenant(a)
        assert first.tenant == a and root.for_tenant(a.upper()) is first
        second = root.for_tenant(b)
        assert second is not first and second.tokens is not first.tokens
        assert second.tokens.tenant_id == b
        assert first._gate is root._gate and first._pacer is root._pacer and first._http is root._http
        assert first.own_writes is not second.own_writes
        assert first.refusals is root.refusals
        assert (
            first._config.admin_consent_url == f"https://login.example.test/{a}/v2.0/adminconsent?client_id=x"
        )
        assert root.for_tenant("organizations") is root


async def test_the_process_client_of_multi_tenant_mode_has_no_tenant_to_sign_in_to() -> None:
    async with GraphClient(CONFIG, TokenProvider(CONFIG)) as root:
        with pytest.raises(GraphAuthenticationFailed) as refused:
            await root.tokens.get_token()
        assert refused.value.code == "tenant_not_connected"
        assert "Connect Microsoft 365" in (refused.value.action or "")


async def test_clients_stay_bounded_and_idle_ones_are_dropped() -> None:
    clock = Clock()
    built: list[str] = []
    async with GraphClient(CONFIG, TokenProvider(CONFIG)) as root:

        def build(tenant: str) -> GraphClient:
            built.append(tenant)
            return GraphClient(replace(CONFIG, tenant_id=tenant), TokenProvider(CONFIG), http=root._http)

        clients = TenantClients(build, max_clients=100, idle_seconds=600, clock=clock)
        tenants = [str(uuid.uuid4()) for _ in range(5000)]
        for tenant in tenants:
            clients.get(tenant)
        assert len(clients) == 100  # flat, however many tenants were served
        assert tenants[-1] in clients and tenants[0] not in clients
        clock.now += 300
        clients.get(tenants[-100])  # these two used again 300 s later
        clients.get(tenants[-1])
        clock.now += 400  # the others idle for 700 s, over the 600 s allowed
        clients.get(tenants[-1])
        assert len(clients) == 2
        assert tenants[-100] in clients and tenants[-2] not in clients
        clients.get(tenants[0])  # a dropped tenant is built again on its next call
        assert built.count(tenants[0]) == 2
        clients.forget(tenants[0])
        assert tenants[0] not in clients
        clients.close()
        assert len(clients) == 0


def test_multi_tenant_mode_needs_the_public_address_and_reaches_the_whole_connected_tenant(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value")
    base = {
        "ms_auth_enabled": True,
        "ms_auth_client_id": "3f2b8c1a-5d4e-4b7a-9c6f-1e2d3a4b5c6d",
        "ms_auth_tenant_id": "organizations",
        "ms_auth_secret_file": secret,
        "data_dir": tmp_path,
    }
    with pytest.raises(SettingsError, match="EQUA_PUBLIC_URL"):
        load_settings(**base)
    settings = load_settings(**base, public_url="https://equa.example.com/")
    assert settings.multi_tenant
    assert settings.consent_callback_url == "https://equa.example.com/microsoft/consent-callback"
    assert settings.ms_group_scope == "tenant"  # the consenting admin's whole tenant...
    narrowed = load_settings(**base, public_url="https://equa.example.com", ms_group_scope="granted")
    assert narrowed.ms_group_scope == "granted"  # ...unless MS_GROUP_SCOPE narrows it
    single = load_settings(**{**base, "ms_auth_tenant_id": str(uuid.uuid4())})
    assert not single.multi_tenant and single.ms_group_scope == "granted"


async def test_the_gate_and_the_pacer_keep_no_state_for_idle_tenants() -> None:
    from equa.microsoft.graph.pacing import WRITES, InProcessTokenBuckets
    from equa.microsoft.graph.throttle import InProcessThrottleGate

    gate = InProcessThrottleGate(max_in_flight=2)
    buckets = InProcessTokenBuckets()
    for index in range(5000):
        tenant = f"tenant-{index}"
        async with gate.slot(tenant):
            await gate.wait_turn(tenant)
        await buckets.take(tenant, WRITES, 0.0)  # a bucket that stays full
    assert gate.tenants_held() == 0
    assert len(buckets) <= InProcessTokenBuckets.PRUNE_ABOVE + 1
    await gate.block("busy", 60)
    assert gate.tenants_held() == 1
