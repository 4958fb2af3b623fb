"""GraphConfig: the slice of Settings the Graph edge needs, frozen so tests can build it directly."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from equa.microsoft.graph.pacing import RESOURCE_UNITS, WRITES, Budget
from equa.microsoft.graph.permissions import DEFAULT_SCOPE, ScopeSetting, group_scope_of

if TYPE_CHECKING:
    from equa.settings import Settings

GRAPH_SCOPE = "https://graph.microsoft.com/.default"

# Hosts MSAL knows; any other authority host (emulator, private cloud proxy) must skip instance discovery.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
)


@dataclass(frozen=True)
class GraphConfig:
    """Everything the token provider and the Graph client read; built once from Settings."""

    client_id: str
    tenant_id: str
    authority_host: str
    graph_url: str
    client_secret: str | None = field(default=None, repr=False)
    # When the secret comes from MS_AUTH_SECRET_FILE it is read again after the secret is refused, so an
    # operator rotates it by replacing the file, without a restart.
    client_secret_file: Path | None = None
    scope: str = GRAPH_SCOPE
    certificate_path: Path | None = None
    ca_bundle: Path | None = None
    timeout_seconds: float = 30.0
    max_attempts: int = 6
    max_retry_wait_seconds: float = 120.0
    max_in_flight: int = 8
    dry_run: bool = False
    redis_url: str | None = field(default=None, repr=False)
    admin_consent_url: str | None = None
    group_scope: ScopeSetting = DEFAULT_SCOPE
    # Per-tenant budgets every request takes from before it is sent (shared through Redis when redis_url is set).
    write_budget: Budget = WRITES
    resource_unit_budget: Budget = RESOURCE_UNITS
    # Multi-tenant mode: how many tenants' clients are kept, and how long an unused one is.
    max_tenant_clients: int = 1000
    tenant_idle_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphConfig:
        secret = settings.client_secret()
        return cls(
            client_id=settings.ms_auth_client_id or "",
            tenant_id=settings.ms_auth_tenant_id or "",
            authority_host=settings.ms_authority_host.rstrip("/"),
            graph_url=settings.ms_graph_url.rstrip("/"),
            client_secret=secret.get_secret_value() if secret is not None else None,
            client_secret_file=settings.ms_auth_secret_file if settings.ms_auth_secret is None else None,
            scope=settings.graph_scope,
            certificate_path=settings.ms_auth_certificate_path,
            ca_bundle=settings.ms_ca_bundle,
            timeout_seconds=settings.graph_timeout_seconds,
            max_attempts=settings.graph_max_attempts,
            max_retry_wait_seconds=settings.graph_max_retry_wait_seconds,
            max_in_flight=settings.graph_max_in_flight,
            dry_run=settings.graph_dry_run,
            redis_url=settings.redis_url,
            admin_consent_url=settings.admin_consent_url(),
            group_scope=group_scope_of(settings),
            write_budget=replace(WRITES, capacity=settings.graph_write_budget),
            resource_unit_budget=replace(RESOURCE_UNITS, capacity=settings.graph_resource_unit_budget),
            max_tenant_clients=settings.graph_tenant_clients,
            tenant_idle_seconds=settings.graph_tenant_idle_seconds,
        )

    def for_tenant(self, tenant_id: str) -> GraphConfig:
        """This configuration aimed at one tenant: its authority, and its own admin consent address."""
        consent = None
        if self.admin_consent_url is not None:
            consent = self.admin_consent_url.replace(
                f"{self.authority}/", f"{self.authority_host}/{tenant_id}/", 1
            )
        return replace(self, tenant_id=tenant_id, admin_consent_url=consent)

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def is_microsoft_authority(self) -> bool:
        return (urlsplit(self.authority_host).hostname or "").lower() in MICROSOFT_AUTHORITY_HOSTS

    @property
    def graph_origin(self) -> str:
        parts = urlsplit(self.graph_url)
        return f"{parts.scheme}://{parts.netloc}"

    def current_client_secret(self) -> str | None:
        """The client secret as it is now: the file's content when it comes from a file, else the fixed value."""
        if self.client_secret_file is not None:
            try:
                return self.client_secret_file.read_text().strip() or None
            except OSError:
                return self.client_secret
        return self.client_secret

    def secret_values(self) -> list[str]:
        """Values that must never appear in logs, errors or metrics."""
        values = {self.client_secret, self.current_client_secret()}
        return [value for value in values if value]

    def http_client(self) -> httpx.AsyncClient:
        """The HTTP client a GraphClient uses when none is given: this config's CAs, timeout and pool size."""
        return httpx.AsyncClient(
            verify=self.ssl_context(),
            timeout=httpx.Timeout(self.timeout_seconds),
            limits=httpx.Limits(
                max_connections=max(10, self.max_in_flight * 2),
                max_keepalive_connections=max(10, self.max_in_flight * 2),
            ),
            headers={"User-Agent": "equa-microsoft"},
            follow_redirects=False,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """Public CAs plus MS_CA_BUNDLE, given explicitly so REQUESTS_CA_BUNDLE and friends cannot override it."""
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
        if self.ca_bundle is not None:
            context.load_verify_locations(cafile=str(self.ca_bundle))
        return context
