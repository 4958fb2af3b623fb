"""What every suite that runs the app against the Graph emulator shares: the emulator's default tenant, one HTTPS
emulator started for a fixture's scope, a per-test reset, and the settings that point the app at it.

Each suite keeps its own fixture names (their scope and retry budgets differ) and builds them from these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from equa.settings import Settings


def default_tenant_users() -> list[dict[str, Any]]:
    """The users of the emulator's default tenant (members and guests), as seeded."""
    from graph_emulator.seeds import default_seed

    users: list[dict[str, Any]] = default_seed()["tenants"][0]["users"]
    return users


def member_users(*, with_mailbox: bool = False) -> list[dict[str, Any]]:
    """Member (not guest) users of the default tenant; with_mailbox keeps those with an address."""
    return [
        user
        for user in default_tenant_users()
        if user["userType"] == "Member" and (user.get("mail") or not with_mailbox)
    ]


def seed_group_id(key: str) -> str:
    """The id of one of the default tenant's seeded groups ("engineering", "marketing", ...)."""
    from graph_emulator.seeds import DEFAULT_TENANT_DOMAIN, stable_id

    return stable_id(DEFAULT_TENANT_DOMAIN, "seed-group", key)


def running_emulator(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Any]:
    """Body of a fixture that starts one emulator (no throttling) over HTTPS and stops it afterwards."""
    testing = pytest.importorskip("graph_emulator.testing", reason="the Graph emulator is not available")
    running = testing.start_emulator(tmp_path_factory.mktemp(name), throttling=False)
    try:
        yield running
    finally:
        running.stop()


def fresh_emulator(running: Any) -> Iterator[Any]:
    """Body of a per-test fixture: the emulator back on its default tenant, without faults, statistics zeroed."""
    running.reset()
    running.set_faults()
    running.reset_stats()
    yield running
    running.set_faults()


def integration_settings(
    make_settings: Callable[..., Settings], emu: Any, *, tenant_wide: bool = True, **overrides: Any
) -> Settings:
    """Settings with the integration on and pointed at `emu`; `overrides` set each suite's retry budgets.

    tenant_wide (MS_GROUP_SCOPE=tenant) lets the suites about linking, members and sync use any seeded group; the
    scope tests pass tenant_wide=False (or ms_group_scope=...) to run in the default `granted` mode.
    """
    values: dict[str, Any] = {
        "ms_group_scope": "tenant" if tenant_wide else "granted",
        "ms_auth_enabled": True,
        "ms_auth_client_id": emu.client_id,
        "ms_auth_tenant_id": emu.tenant_id,
        "ms_auth_secret": emu.client_secret,
        "ms_authority_host": emu.base_url,
        "ms_graph_url": emu.graph_url,
        "ms_ca_bundle": emu.ca_path,
        "graph_max_attempts": 6,
    }
    values.update(overrides)
    return make_settings(**values)
