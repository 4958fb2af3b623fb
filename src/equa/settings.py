"""Every environment variable the service reads, in one typed Settings object."""

from __future__ import annotations

import os
import re
import secrets
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com"
# MS_AUTH_TENANT_ID's value that turns multi-tenant mode on, and the consent's way back into Equa.
MULTI_TENANT_AUTHORITY = "organizations"
CONSENT_CALLBACK_PATH = "/microsoft/consent-callback"
# Graph hosts of the national clouds; each issues tokens for its own resource (scope https://{host}/.default).
NATIONAL_GRAPH_HOSTS = frozenset(
    {"graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}
)


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class OrgCreation(StrEnum):
    """Who may create an organization through the API and the pages (operators always can, with the CLI)."""

    ANYONE = "anyone"
    PLATFORM_ADMINS = "platform-admins"


class GroupScopeMode(StrEnum):
    """MS_GROUP_SCOPE: which tenant groups an organization may reach (equa.microsoft.scope)."""

    GRANTED = "granted"
    ADMINISTRATIVE_UNIT = "administrative-unit"
    TENANT = "tenant"


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class SettingsError(ValueError):
    """A configuration problem, reported as one line naming the variable to fix."""


class Settings(BaseSettings):
    """Configuration of one process. Spec names stay (MS_*); everything else is EQUA_*."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # --- Microsoft identity platform and Graph (spec section 2.1) ---
    ms_auth_enabled: bool = Field(False, alias="MS_AUTH_ENABLED")
    ms_auth_client_id: str | None = Field(None, alias="MS_AUTH_CLIENT_ID")
    ms_auth_tenant_id: str | None = Field(None, alias="MS_AUTH_TENANT_ID")
    ms_auth_secret: SecretStr | None = Field(None, alias="MS_AUTH_SECRET")
    ms_auth_secret_file: Path | None = Field(None, alias="MS_AUTH_SECRET_FILE")
    ms_auth_certificate_path: Path | None = Field(None, alias="MS_AUTH_CERTIFICATE_PATH")
    ms_authority_host: str = Field(PUBLIC_AUTHORITY_HOST, alias="MS_AUTHORITY_HOST")
    ms_graph_url: str = Field("https://graph.microsoft.com/v1.0", alias="MS_GRAPH_URL")
    ms_graph_scope: str | None = Field(None, alias="MS_GRAPH_SCOPE")
    ms_ca_bundle: Path | None = Field(None, alias="MS_CA_BUNDLE")
    ms_admin_consent_redirect_uri: str | None = Field(None, alias="MS_ADMIN_CONSENT_REDIRECT_URI")
    # Multi-tenant mode (MS_AUTH_TENANT_ID=organizations): idle tenants' Graph clients are dropped after this long,
    # and at most this many are kept, so memory stays flat however many tenants are connected.
    graph_tenant_idle_seconds: float = Field(3600.0, alias="EQUA_GRAPH_TENANT_IDLE", ge=1)
    graph_tenant_clients: int = Field(1000, alias="EQUA_GRAPH_TENANT_CLIENTS", ge=1, le=1_000_000)

    # --- Graph client behaviour ---
    graph_timeout_seconds: float = Field(30.0, alias="EQUA_GRAPH_TIMEOUT", gt=0)
    graph_max_attempts: int = Field(6, alias="EQUA_GRAPH_MAX_ATTEMPTS", ge=1, le=20)
    graph_max_retry_wait_seconds: float = Field(120.0, alias="EQUA_GRAPH_MAX_RETRY_WAIT", ge=0)
    graph_max_in_flight: int = Field(8, alias="EQUA_GRAPH_MAX_IN_FLIGHT", ge=1, le=256)
    graph_dry_run: bool = Field(False, alias="EQUA_GRAPH_DRY_RUN")
    # Per-tenant pacing (docs/deployment.md): Microsoft allows 3,000 writes per 150 s per app and tenant, and
    # 3,500 / 5,000 / 8,000 resource units per 10 s for tenants of under 50 / 50-500 / over 500 users.
    graph_write_budget: int = Field(2_850, alias="EQUA_GRAPH_WRITE_BUDGET", ge=1, le=3_000)
    graph_resource_unit_budget: int = Field(3_200, alias="EQUA_GRAPH_RESOURCE_UNIT_BUDGET", ge=1, le=8_000)

    # --- Equa service ---
    data_dir: Path = Field(Path(".equa"), alias="EQUA_DATA_DIR")
    database_url: str | None = Field(None, alias="EQUA_DATABASE_URL")
    secret_key: SecretStr | None = Field(None, alias="EQUA_SECRET_KEY")
    broker_url: str | None = Field(None, alias="EQUA_BROKER_URL")
    redis_url: str | None = Field(None, alias="EQUA_REDIS_URL")
    log_format: LogFormat = Field(LogFormat.TEXT, alias="EQUA_LOG_FORMAT")
    log_level: str = Field("INFO", alias="EQUA_LOG_LEVEL")
    metrics_token: SecretStr | None = Field(None, alias="EQUA_METRICS_TOKEN")
    sync_interval_seconds: int = Field(4 * 3600, alias="EQUA_SYNC_INTERVAL", ge=60)
    sync_lease_seconds: int = Field(120, alias="EQUA_SYNC_LEASE", ge=10)
    # The fleet engine tracks linked groups by delta; each group still gets a full reconcile this often (seconds).
    full_reconcile_interval_seconds: int = Field(24 * 3600, alias="EQUA_FULL_RECONCILE_INTERVAL", ge=60)
    # Runs of one tenant running at once, across every worker: a throttled tenant cannot take every worker slot.
    sync_tenant_concurrency: int = Field(4, alias="EQUA_SYNC_TENANT_CONCURRENCY", ge=1, le=1000)
    # A run whose Graph calls stay unavailable (429, 503, 504, network) after the client's retries is queued again
    # this many times, waiting EQUA_SYNC_REQUEUE_BACKOFF seconds before the first try and twice as long each time.
    sync_max_requeues: int = Field(3, alias="EQUA_SYNC_MAX_REQUEUES", ge=0, le=20)
    sync_requeue_backoff_seconds: float = Field(30.0, alias="EQUA_SYNC_REQUEUE_BACKOFF", gt=0, le=3600)
    # Per-person outcomes are kept for this many of each organization's newest runs; older ones are deleted in
    # the background (the runs themselves stay).
    sync_run_retention: int = Field(50, alias="EQUA_SYNC_RUN_RETENTION", ge=1, le=100_000)
    # An organization may ask for one sync or dry run (API or page) every this many seconds; 0: no limit.
    sync_min_interval_seconds: int = Field(10, alias="EQUA_SYNC_MIN_INTERVAL", ge=0, le=86_400)
    # Unset: audit events are kept forever. Set: events older than this many days are deleted in the background.
    audit_retention_days: int | None = Field(None, alias="EQUA_AUDIT_RETENTION_DAYS", ge=1, le=36_500)
    status_cache_seconds: float = Field(60.0, alias="EQUA_STATUS_CACHE_SECONDS", ge=0)
    # Unset: 2 s on SQLite (one serving process, where each statement costs thread round trips), off on
    # PostgreSQL (several replicas, where another replica's change would show only after the lifetime).
    read_cache_seconds: float | None = Field(None, alias="EQUA_READ_CACHE_SECONDS", ge=0, le=60)
    platform_admins: str = Field("", alias="EQUA_PLATFORM_ADMINS")
    org_creation: OrgCreation = Field(OrgCreation.ANYONE, alias="EQUA_ORG_CREATION")
    public_url: str | None = Field(None, alias="EQUA_PUBLIC_URL")
    # Which Microsoft 365 groups an organization admin may link and manage (docs/security.md): `granted`,
    # `administrative-unit:<id>` or `tenant`.
    ms_group_scope: str = Field("granted", alias="MS_GROUP_SCOPE")
    group_create_limit: int = Field(5, alias="EQUA_GROUP_CREATE_LIMIT", ge=0, le=10_000)
    # Unset: API tokens live until revoked. Set: a token stops working this many days after its creation.
    api_token_max_age_days: int | None = Field(None, alias="EQUA_API_TOKEN_MAX_AGE_DAYS", ge=1, le=36_500)
    # Connections each process keeps open to PostgreSQL (plus as many again in bursts); see docs/operations.md.
    db_pool_size: int = Field(5, alias="EQUA_DB_POOL_SIZE", ge=1, le=200)
    # How long the scheduler's leader lock in Redis lives without renewal: a dead leader is replaced after this.
    scheduler_lock_seconds: int = Field(30, alias="EQUA_SCHEDULER_LOCK_SECONDS", ge=5, le=3600)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto uvicorn trusts (its --forwarded-allow-ips).
    forwarded_allow_ips: str = Field("127.0.0.1", alias="EQUA_FORWARDED_ALLOW_IPS")

    # --- Abuse resistance ---
    # Sign-in failures allowed per account and per client address before each next try must wait (doubling).
    login_free_failures: int = Field(5, alias="EQUA_LOGIN_FREE_FAILURES", ge=1, le=1000)
    login_max_wait_seconds: float = Field(900.0, alias="EQUA_LOGIN_MAX_WAIT", ge=1, le=86_400)
    # Password hashes computed at once (each argon2 hash takes ~64 MiB and a core for tens of milliseconds). One
    # core is left to the event loop, or a sign-in flood slows every other request of the process.
    password_hash_concurrency: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) - 1),
        alias="EQUA_PASSWORD_HASH_CONCURRENCY",
        ge=1,
        le=64,
    )
    max_body_bytes: int = Field(1_048_576, alias="EQUA_MAX_BODY_BYTES", ge=1024)

    @field_validator("ms_authority_host", "ms_graph_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("ms_graph_url")
    @classmethod
    def _graph_over_https(cls, value: str) -> str:
        # Tokens and people's data travel on this connection; the emulator serves https too.
        if not value.lower().startswith("https://"):
            raise SettingsError(
                "MS_GRAPH_URL must be an https:// URL (Microsoft Graph is only served over https)"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_an_origin(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise SettingsError(
                "EQUA_PUBLIC_URL must be the http(s) address users open, like https://equa.example.com "
                "(no query or fragment)"
            )
        return value

    @field_validator("platform_admins")
    @classmethod
    def _platform_admins_are_addresses(cls, value: str) -> str:
        for position, entry in enumerate(value.split(","), start=1):
            entry = entry.strip()
            # The entry itself is not repeated: it is somebody's address, and this message may reach a log.
            if entry and ("@" not in entry or entry.startswith("@") or entry.endswith("@")):
                raise SettingsError(
                    f"EQUA_PLATFORM_ADMINS: entry {position} is not an email address "
                    "(give a comma-separated list of addresses)"
                )
        return value

    @field_validator("ms_group_scope")
    @classmethod
    def _group_scope_is_known(cls, value: str) -> str:
        value = value.strip()
        mode, _, unit = value.partition(":")
        mode = mode.strip().lower()
        if mode in (GroupScopeMode.GRANTED, GroupScopeMode.TENANT) and not unit:
            return mode
        if mode == GroupScopeMode.ADMINISTRATIVE_UNIT:
            unit = unit.strip()
            if not _GUID.fullmatch(unit):
                raise SettingsError(
                    "MS_GROUP_SCOPE: administrative-unit needs the unit's object id, a GUID "
                    "(administrative-unit:00000000-0000-0000-0000-000000000000)"
                )
            return f"{mode}:{unit.lower()}"
        raise SettingsError("MS_GROUP_SCOPE must be granted, administrative-unit:<unit object id> or tenant")

    @model_validator(mode="after")
    def _require_microsoft_settings(self) -> Settings:
        if not self.ms_auth_enabled:
            return self
        # Every missing variable in the one line, so a half-done setup is fixed in one go, not one per run.
        missing = [
            name
            for name, value in (
                ("MS_AUTH_CLIENT_ID", self.ms_auth_client_id),
                ("MS_AUTH_TENANT_ID", self.ms_auth_tenant_id),
            )
            if not value
        ]
        if (
            self.ms_auth_secret is None
            and self.ms_auth_secret_file is None
            and self.ms_auth_certificate_path is None
        ):
            missing.append(
                "a credential (one of MS_AUTH_SECRET, MS_AUTH_SECRET_FILE or MS_AUTH_CERTIFICATE_PATH)"
            )
        if missing:
            listed = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
            verb = "is" if len(missing) == 1 else "are"
            raise SettingsError(f"MS_AUTH_ENABLED is true but {listed} {verb} not set")
        if self.ms_auth_secret_file is not None and not self.ms_auth_secret_file.is_file():
            raise SettingsError(
                f"MS_AUTH_SECRET_FILE points to {self.ms_auth_secret_file}, which is not a file"
            )
        if self.ms_auth_certificate_path is not None and not self.ms_auth_certificate_path.is_file():
            raise SettingsError(
                f"MS_AUTH_CERTIFICATE_PATH points to {self.ms_auth_certificate_path}, which is not a file"
            )
        if self.ms_ca_bundle is not None and not self.ms_ca_bundle.is_file():
            raise SettingsError(f"MS_CA_BUNDLE points to {self.ms_ca_bundle}, which is not a file")
        redirect = self.ms_admin_consent_redirect_uri
        if redirect and redirect.startswith("/") and not self.public_url:
            raise SettingsError(
                "MS_ADMIN_CONSENT_REDIRECT_URI is a path; set EQUA_PUBLIC_URL so it can be made a full address"
            )
        if not self.ms_authority_host.startswith("https://"):
            raise SettingsError(
                "MS_AUTHORITY_HOST must be an https:// URL (MSAL accepts only https authorities)"
            )
        if self.multi_tenant:
            if not self.public_url:
                raise SettingsError(
                    "MS_AUTH_TENANT_ID=organizations (multi-tenant mode) needs EQUA_PUBLIC_URL: the admin consent "
                    "redirects back to {EQUA_PUBLIC_URL}/microsoft/consent-callback"
                )
            if "ms_group_scope" not in self.model_fields_set:
                # A tenant administrator consented for the whole tenant: its groups are the organization's to use.
                self.ms_group_scope = GroupScopeMode.TENANT.value
        return self

    # --- derived values ---
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'equa.db').resolve()}"

    @property
    def api_token_max_age(self) -> timedelta | None:
        return None if self.api_token_max_age_days is None else timedelta(days=self.api_token_max_age_days)

    @property
    def effective_read_cache_seconds(self) -> float:
        if self.read_cache_seconds is not None:
            return self.read_cache_seconds
        return 2.0 if self.resolved_database_url.startswith("sqlite") else 0.0

    @property
    def group_scope_mode(self) -> GroupScopeMode:
        return GroupScopeMode(self.ms_group_scope.partition(":")[0])

    @property
    def group_scope_unit(self) -> str | None:
        """The administrative unit's object id in `administrative-unit:<id>` mode, else None."""
        return self.ms_group_scope.partition(":")[2] or None

    @cached_property
    def platform_admin_emails(self) -> frozenset[str]:
        """EQUA_PLATFORM_ADMINS as normalized addresses (trimmed, lower case, as accounts store them)."""
        return frozenset(e.strip().lower() for e in self.platform_admins.split(",") if e.strip())

    def client_secret(self) -> SecretStr | None:
        """The client secret, from MS_AUTH_SECRET or read from MS_AUTH_SECRET_FILE (rotation-friendly)."""
        if self.ms_auth_secret is not None:
            return self.ms_auth_secret
        if self.ms_auth_secret_file is not None:
            return SecretStr(self.ms_auth_secret_file.read_text().strip())
        return None

    @cached_property
    def session_secret(self) -> SecretStr:
        """Session signing key: EQUA_SECRET_KEY, else one generated once and kept in the data directory."""
        if self.secret_key is not None:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.is_file():
            return SecretStr(path.read_text().strip())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(value)
        return SecretStr(value)

    def public_link(self, path: str) -> str:
        """An absolute link to `path` at EQUA_PUBLIC_URL, or the path alone when the public address is not set."""
        if self.public_url and path.startswith("/"):
            return f"{self.public_url}{path}"
        return path

    def cookies_secure(self, request_scheme: str) -> bool:
        """Whether cookies carry Secure: decided by EQUA_PUBLIC_URL's scheme when set, since behind a proxy the
        scheme uvicorn sees can be plain http even though users come over https."""
        if self.public_url:
            return self.public_url.startswith("https://")
        return request_scheme == "https"

    @property
    def graph_scope(self) -> str:
        """The token scope for Graph: MS_GRAPH_SCOPE, else the `.default` scope of MS_GRAPH_URL's national cloud.

        Any other Graph host (the emulator, a test proxy) stands in for the public cloud and gets its scope.
        """
        if self.ms_graph_scope:
            return self.ms_graph_scope
        from urllib.parse import urlsplit

        host = (urlsplit(self.ms_graph_url).hostname or "").lower()
        if host in NATIONAL_GRAPH_HOSTS:
            return f"https://{host}/.default"
        return GRAPH_SCOPE

    @property
    def authority(self) -> str:
        return f"{self.ms_authority_host}/{self.ms_auth_tenant_id}"

    @property
    def multi_tenant(self) -> bool:
        """MS_AUTH_TENANT_ID=organizations: each organization connects its own tenant; there is no home tenant."""
        return (self.ms_auth_tenant_id or "").strip().lower() == MULTI_TENANT_AUTHORITY

    @property
    def consent_callback_url(self) -> str:
        """Where the admin consent of multi-tenant mode comes back to (the app registration's redirect URI)."""
        return self.public_link(CONSENT_CALLBACK_PATH)

    def admin_consent_url(self, state: str | None = None, redirect_uri: str | None = None) -> str | None:
        """The URL a tenant administrator opens to grant the app's Graph permissions."""
        if not (self.ms_auth_client_id and self.ms_auth_tenant_id):
            return None
        from urllib.parse import urlencode

        params = {"client_id": self.ms_auth_client_id, "scope": self.graph_scope}
        redirect = redirect_uri or self.ms_admin_consent_redirect_uri
        if redirect:
            redirect = self.public_link(redirect)
            params["redirect_uri"] = redirect
        if state:
            params["state"] = state
        return f"{self.authority}/v2.0/adminconsent?{urlencode(params)}"

    def secret_values(self) -> list[str]:
        """Every secret this process knows, for the log redaction filter."""
        values: list[str] = []
        for secret in (self.ms_auth_secret, self.secret_key, self.metrics_token):
            if secret is not None and secret.get_secret_value():
                values.append(secret.get_secret_value())
        if self.ms_auth_secret_file is not None and self.ms_auth_secret_file.is_file():
            values.append(self.ms_auth_secret_file.read_text().strip())
        return [v for v in values if len(v) >= 6]


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with keyword overrides (by field name) for tests and the demo.

    Raises SettingsError with one line naming the variable, whatever went wrong, so start-up can print it as is.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        if first.get("type") != "value_error":
            field = ".".join(str(p) for p in first.get("loc", ()))
            env = _ENV_NAMES.get(field, field)
            message = f"{env}: {message}"
        raise SettingsError(message) from None


_ENV_NAMES = {name: (field.alias or name.upper()) for name, field in Settings.model_fields.items()}
