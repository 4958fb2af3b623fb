"""Token provider against the emulator's identity platform: caching, single-flight, refresh, sign-in failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from equa.microsoft.graph.client import GraphClient, build_graph_client
from equa.microsoft.graph.errors import GraphAuthenticationFailed, GraphPermissionDenied
from equa.microsoft.graph.retry import RetryPolicy
from equa.settings import load_settings


async def test_hundred_calls_use_one_token(emu: Any, graph: GraphClient) -> None:
    for _ in range(100):
        response = await graph.get("/groups", params={"$top": "1"})
        assert response.status == 200
    assert emu.stats()["token_requests"] == 1


async def test_hundred_concurrent_first_calls_share_one_token_request(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    client = make_client(max_in_flight=100)
    responses = await asyncio.gather(*(client.get("/groups", params={"$top": "1"}) for _ in range(100)))
    assert {r.status for r in responses} == {200}
    assert emu.stats()["token_requests"] == 1


async def test_revoked_token_is_replaced_without_the_caller_seeing_401(emu: Any, graph: GraphClient) -> None:
    await graph.get("/groups", params={"$top": "1"})
    emu.revoke_tokens()
    response = await graph.get("/groups", params={"$top": "1"})
    assert response.status == 200
    assert emu.stats()["token_requests"] == 2


async def test_app_without_consent_is_told_where_to_grant_it(emu: Any) -> None:
    settings = load_settings(
        ms_auth_client_id=emu.unconsented_client_id,
        ms_auth_tenant_id=emu.tenant_id,
        ms_auth_secret=emu.unconsented_client_secret,
        ms_authority_host=emu.base_url,
        ms_graph_url=emu.graph_url,
        ms_ca_bundle=emu.ca_path,
        graph_max_attempts=2,
    )
    async with build_graph_client(settings) as client:
        with pytest.raises(GraphPermissionDenied) as caught:
            await client.get("/groups")
    consent_url = settings.admin_consent_url()
    assert consent_url and consent_url in (caught.value.action or "")
    assert caught.value.status == 403
    # The 403 made the client fetch a fresh token once (consent may just have been granted), then give up.
    assert emu.stats()["token_requests"] == 2


@pytest.mark.parametrize(
    ("change", "code", "phrase"),
    [
        ({"client_secret": "not-the-secret-value"}, "AADSTS7000215", "Value, not its Secret ID"),
        ({"client_id": str(uuid.uuid4())}, "AADSTS700016", "MS_AUTH_CLIENT_ID"),
        ({"tenant_id": str(uuid.uuid4())}, "AADSTS90002", "MS_AUTH_TENANT_ID"),
    ],
    ids=["wrong-secret", "unknown-app", "unknown-tenant"],
)
async def test_sign_in_failures_name_the_setting_to_fix(
    make_client: Callable[..., GraphClient], change: dict[str, str], code: str, phrase: str
) -> None:
    client = make_client(**change)
    with pytest.raises(GraphAuthenticationFailed) as caught:
        await client.get("/groups")
    assert caught.value.code == code
    assert phrase in (caught.value.action or "")


async def test_expired_secret_suggests_a_new_secret_or_a_certificate(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    seeds = pytest.importorskip("graph_emulator.seeds")
    client = make_client(client_id=seeds.EXPIRED_CLIENT_ID, client_secret=seeds.EXPIRED_CLIENT_SECRET)
    with pytest.raises(GraphAuthenticationFailed) as caught:
        await client.get("/groups")
    assert caught.value.code == "AADSTS7000222"
    assert "certificate" in (caught.value.action or "")


async def test_token_outage_is_retried_then_the_call_succeeds(
    emu: Any, make_client: Callable[..., GraphClient]
) -> None:
    client = make_client(
        policy=RetryPolicy(max_attempts=10, max_total_wait=10.0, backoff_base=0.1, backoff_cap=0.5)
    )
    emu.set_faults(token_outage=True)

    async def restore_soon() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(emu.set_faults, token_outage=False)

    restorer = asyncio.create_task(restore_soon())
    response = await client.get("/groups", params={"$top": "1"})
    await restorer
    assert response.status == 200


async def test_certificate_credential_signs_in(
    emu: Any, make_client: Callable[..., GraphClient], certificate_app: Any
) -> None:
    client = make_client(
        client_id=certificate_app.client_id, client_secret=None, certificate_path=certificate_app.pem_path
    )
    response = await client.get("/groups", params={"$top": "1"})
    assert response.status == 200
    assert emu.stats()["token_requests"] == 1


def test_certificate_thumbprint_is_sha1_of_the_certificate(tmp_path, make_certificate_pem) -> None:
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from equa.microsoft.graph.auth import load_certificate_credential

    pem, certificate_pem = make_certificate_pem()
    path = tmp_path / "app.pem"
    path.write_bytes(pem)
    credential = load_certificate_credential(path)
    der = x509.load_pem_x509_certificate(certificate_pem).public_bytes(serialization.Encoding.DER)
    assert credential["thumbprint"] == hashlib.sha1(der).hexdigest().upper()
    assert "PRIVATE KEY" in credential["private_key"]
    only_certificate = tmp_path / "cert-only.pem"
    only_certificate.write_bytes(certificate_pem)
    with pytest.raises(GraphAuthenticationFailed, match="private key"):
        load_certificate_credential(only_certificate)
