"""Test helpers for scale: a generated fleet of tenants, and delta tokens' expiry. Mixed into RunningEmulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fleet import fleet_seed

if TYPE_CHECKING:
    from .testing import EmulatorControl


class FleetHelpers:
    control: EmulatorControl

    def load_fleet(
        self,
        tenants: int = 100,
        groups: int = 2000,
        memberships: int = 400_000,
        *,
        min_members: int = 5,
        max_members: int = 2000,
        seed: int = 7,
    ) -> dict[str, Any]:
        """Reset the emulator to a generated fleet (see `graph_emulator.fleet`) and answer its layout:
        `{"tenants": [{"id", "domain", "size", "users", "groups": [{"id", "members"}]}], "memberships",
        "build_seconds"}`. Every tenant has consented to the app (`client_id`, `client_secret`)."""
        self.control.reset(
            fleet_seed(
                tenants, groups, memberships, min_members=min_members, max_members=max_members, seed=seed
            )
        )
        return self.control.fleet()

    def fleet(self) -> dict[str, Any]:
        return self.control.fleet()

    def expire_delta_tokens(self, tenant: str | None = None, status: int = 400) -> None:
        """Every deltaLink (and nextLink) issued so far, for `tenant` or every tenant, answers `status`
        (400, as Microsoft documents for identity resources, or 410) with the code `syncStateNotFound`."""
        self.control.expire_delta_tokens(tenant, status)

    def set_delta_lifetime(self, seconds: float) -> None:
        """How long a delta token lives (Microsoft: 7 days); until the next reset."""
        self.control.set_delta_lifetime(seconds)

    def delta_tokens(self) -> dict[str, Any]:
        """Tokens issued, lifetime, expiries, and how many requests got the expired answer."""
        return self.control.delta_tokens()

    def throttle_tenant(self, tenant: str, rate_429: float = 1.0, retry_after_seconds: int = 1) -> None:
        """Throttle one tenant hard: this share of its Graph requests answers 429 with `Retry-After`, even with
        throttling off; other tenants are untouched. 0 ends it; a reset too."""
        self.control.throttle_tenant(tenant, rate_429, retry_after_seconds)
