"""Fixtures of the API fuzz run: the emulator, a seeded SQLite installation, `equa serve`, and the admin's token."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))

from service_harness import (
    SeededOrganization,
    ServedApp,
    seed_group_id,
    seed_organization_sync,
    service_environment,
    tenant_member_emails,
)


@dataclass(frozen=True)
class FuzzTarget:
    base_url: str
    seeded: SeededOrganization
    app: ServedApp


@pytest.fixture(scope="session")
def fuzz_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    testing = pytest.importorskip("graph_emulator.testing", reason="the Graph emulator is not available")
    running = testing.start_emulator(tmp_path_factory.mktemp("fuzz-emulator"), throttling=False)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory, fuzz_emulator: Any) -> Iterator[FuzzTarget]:
    """The served app with an organization whose admin holds an API token and whose group is linked."""
    root = tmp_path_factory.mktemp("fuzz-service")
    database_url = f"sqlite+aiosqlite:///{root / 'equa.db'}"
    team = tenant_member_emails(6)
    seeded = seed_organization_sync(database_url, admin_email=team[0], team=team)
    env = service_environment(fuzz_emulator, database_url, root / "data", EQUA_LOG_LEVEL="ERROR")
    app = ServedApp(env, root / "serve.log")
    try:
        linked = httpx.post(
            f"{app.base_url}/api/v1/organizations/{seeded.organization_id}/microsoft/link-group",
            json={"groupId": seed_group_id("engineering")},
            headers=seeded.headers,
            timeout=30,
        )
        assert linked.status_code == 200, linked.text
        yield FuzzTarget(app.base_url, seeded, app)
    finally:
        app.stop()
