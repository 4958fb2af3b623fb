"""Fixtures for the Graph edge: one emulator over HTTPS for the module's tests, and clients pointed at it."""

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
NO_FAULTS: dict[str, Any] = {
    "latency_ms": 0,
    "jitter_ms": 0,
    "rate_429": 0.0,
    "rate_503": 0.0,
    "rate_504": 0.0,
    "drop_rate": 0.0,
    "replication_lag_seconds": 0.0,
    "token_outage": False,
}


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    testing = pytest.importorskip("graph_emulator.testing", reason="the Graph emulator is not available")
    running = testing.start_emulator(tmp_path_factory.mktemp("graph-emulator"), throttling=False)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def emu(emulator: Any) -> Iterator[Any]:
    """The emulator with no faults and zeroed statistics, restored after the test."""
    emulator.set_faults(**NO_FAULTS)
    emulator.reset_stats()
    yield emulator
    emulator.set_faults(**NO_FAULTS)


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
