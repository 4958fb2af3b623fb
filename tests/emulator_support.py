"""Facts about the Graph emulator's default tenant that several suites assert on (its users and seeded groups).

The emulator itself is the fixture `emu` and the settings pointed at it `settings`/`emulator_settings`, in
tests/conftest.py.
"""

from __future__ import annotations

from typing import Any


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
