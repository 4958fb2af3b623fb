"""pytest plugin: an offline Microsoft identity + Graph tenant for your tests.

Enable it with `-p graph_emulator.pytest_plugin` (or `pytest_plugins = ["graph_emulator.pytest_plugin"]` in the
root conftest.py). It gives the fixture `graph_emulator`: one HTTPS emulator per test session, reset to its seeded
tenant before each test that uses it. The fixture is a `graph_emulator.testing.RunningEmulator`:

- `ca_path`, `base_url`, `graph_url`, `authority`, `token_url`, `tenant_id`, `client_id`, `client_secret`;
- `httpx_settings()`, `msal_settings()`, `azure_identity_settings()`: ready keyword arguments for those clients;
- `set_faults(...)` (error rates, latency, dropped or lost answers), `set_lag(seconds)`, `replicate_now()`;
  the fixture `graph_emulator_instant` is the same tenant with no replication lag, `graph_emulator_multi_tenant`
  the multi-tenant demo (several tenants, sign-in accounts, admin consent pages);
- `add_user`, `add_group`, `add_members`, `add_administrative_unit`, `set_app_roles`, `stats()` and the other
  /_emulator controls.

Options: `--graph-emulator-lag SECONDS` (replication lag, default 1; 0 for read-your-writes),
`--graph-emulator-seed FILE` (a JSON seed instead of the default tenant), `--graph-emulator-throttling`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .runtime import DEFAULT_LAG_SECONDS
from .seeds import multi_tenant_seed
from .testing import RunningEmulator, start_emulator


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("graph-emulator", "offline Microsoft Graph emulator")
    group.addoption(
        "--graph-emulator-lag",
        type=float,
        default=DEFAULT_LAG_SECONDS,
        help="seconds before a Graph write is read back (default %(default)s; 0: at once)",
    )
    group.addoption("--graph-emulator-seed", type=Path, default=None, help="JSON seed file for the tenant")
    group.addoption(
        "--graph-emulator-throttling",
        action="store_true",
        default=False,
        help="throttle like Graph (off by default so tests run fast)",
    )


@pytest.fixture(scope="session")
def graph_emulator_server(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[RunningEmulator]:
    """The session's emulator; most tests want `graph_emulator`, which also resets it."""
    seed_file: Path | None = pytestconfig.getoption("--graph-emulator-seed")
    seed: dict[str, Any] | None = json.loads(seed_file.read_text(encoding="utf-8")) if seed_file else None
    running = start_emulator(
        tmp_path_factory.mktemp("graph-emulator"),
        seed=seed,
        throttling=bool(pytestconfig.getoption("--graph-emulator-throttling")),
        lag_seconds=float(pytestconfig.getoption("--graph-emulator-lag")),
    )
    running.initial_seed = seed  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def graph_emulator(graph_emulator_server: RunningEmulator) -> RunningEmulator:
    """The seeded tenant afresh: no faults, the configured lag, zeroed statistics."""
    graph_emulator_server.reset(getattr(graph_emulator_server, "initial_seed", None))
    return graph_emulator_server


@pytest.fixture
def graph_emulator_multi_tenant(graph_emulator: RunningEmulator) -> RunningEmulator:
    """`graph_emulator` on the multi-tenant demo (seeds.multi_tenant_seed): the app registered in the publisher's
    tenant, consented in Contoso, not in Fabrikam; `tenant_admin(...)` gives each tenant's administrator."""
    graph_emulator.reset(multi_tenant_seed())
    return graph_emulator


@pytest.fixture
def graph_emulator_instant(graph_emulator: RunningEmulator) -> RunningEmulator:
    """`graph_emulator` with read-your-writes: for a test about something else than Graph's replication lag."""
    graph_emulator.set_lag(0)
    return graph_emulator
