"""Fixtures for the Graph edge: `emu` on a tenant of its own (10,000 users, a certificate app), and clients on it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from equa.microsoft.graph.auth import TokenProvider
from equa.microsoft.graph.client import GraphClient
from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.retry import RetryPolicy
from equa.microsoft.graph.throttle import InProcessThrottleGate

# Short backoff so retries of injected faults take milliseconds, not seconds.
FAST_POLICY = RetryPolicy(max_attempts=6, max_total_wait=10.0, backoff_base=0.02, backoff_cap=0.2)


CERTIFICATE_CLIENT_ID = "6f1c0f4e-2d7a-4c55-9a36-0c3f1b8e2a11"


@dataclasses.dataclass(frozen=True)
class CertificateApp:
    client_id: str
    pem_path: Path  # private key and certificate, as MS_AUTH_CERTIFICATE_PATH expects


def self_signed_pem() -> tuple[bytes, bytes]:
    """(private key + certificate PEM, certificate-only PEM) of a fresh self-signed certificate."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "equa test app")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + certificate_pem, certificate_pem


@pytest.fixture(scope="session")
def make_certificate_pem() -> Any:
    return self_signed_pem


@pytest.fixture(scope="session")
def certificate_app(tmp_path_factory: pytest.TempPathFactory) -> CertificateApp:
    pem, _ = self_signed_pem()
    path = tmp_path_factory.mktemp("certificate") / "app.pem"
    path.write_bytes(pem)
    return CertificateApp(CERTIFICATE_CLIENT_ID, path)


@pytest.fixture(scope="session")
def graph_emulator_server(
    tmp_path_factory: pytest.TempPathFactory, certificate_app: CertificateApp
) -> Iterator[Any]:
    """This suite's tenant (the plugin's server, overridden): big, and with an app that signs in by certificate."""
    testing = pytest.importorskip("graph_emulator.testing", reason="the Graph emulator is not available")
    seeds = pytest.importorskip("graph_emulator.seeds")
    # 10,000 users so paging a 10,000-member group needs no slow set-up; one extra app signs in by certificate.
    seed = seeds.generated_seed(10_000, 0)
    pem = certificate_app.pem_path.read_text()
    certificate_pem = pem[pem.index("-----BEGIN CERTIFICATE-----") :]
    seed["tenants"][0]["apps"].append(
        {
            "clientId": certificate_app.client_id,
            "displayName": "Equa (certificate)",
            "certificates": [{"pem": certificate_pem}],
            "roles": list(seeds.APP_ROLES),
        }
    )
    running = testing.start_emulator(tmp_path_factory.mktemp("graph-emulator"), seed=seed, throttling=False)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def emu(graph_emulator_server: Any) -> Iterator[Any]:
    """The emulator with no faults and zeroed statistics, restored after the test (not re-seeded: 10,000 users)."""
    graph_emulator_server.set_faults()
    graph_emulator_server.reset_stats()
    yield graph_emulator_server
    graph_emulator_server.set_faults()


@pytest.fixture
def instant_consistency(emu: Any) -> Iterator[Any]:
    """For a test about the client itself: every write is read back at once (Graph lags by default)."""
    lag = emu.control.consistency()["lag_seconds"]
    emu.set_lag(0)
    yield emu
    emu.set_lag(lag)


@pytest.fixture
def graph_config(emu: Any) -> GraphConfig:
    return GraphConfig(
        client_id=emu.client_id,
        tenant_id=emu.tenant_id,
        authority_host=emu.base_url,
        graph_url=emu.graph_url,
        client_secret=emu.client_secret,
        ca_bundle=Path(emu.ca_path),
        timeout_seconds=10.0,
        max_attempts=6,
        max_retry_wait_seconds=10.0,
        max_in_flight=8,
    )


@pytest.fixture
async def make_client(graph_config: GraphConfig) -> AsyncIterator[Callable[..., GraphClient]]:
    """Build GraphClients on the emulator; keyword overrides go to GraphConfig, `policy`/`http` to the client."""
    made: list[GraphClient] = []

    def make(*, policy: RetryPolicy = FAST_POLICY, http: Any = None, **overrides: Any) -> GraphClient:
        config = dataclasses.replace(graph_config, **overrides)
        client = GraphClient(
            config,
            TokenProvider(config),
            gate=InProcessThrottleGate(config.max_in_flight),
            policy=policy,
            http=http,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def graph(make_client: Callable[..., GraphClient]) -> GraphClient:
    return make_client()
