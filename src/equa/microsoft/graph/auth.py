"""TokenProvider: app-only Graph tokens from MSAL, acquired off the event loop, one acquisition at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.errors import (
    GraphAuthenticationFailed,
    GraphError,
    GraphTransient,
    classify_token_error,
)
from equa.microsoft.graph.metrics import GRAPH_TOKEN_ACQUISITIONS

log = logging.getLogger("equa.microsoft.graph.auth")

# MSAL serves a cached token until fewer than 300 s are left; we mirror that so the fast path skips MSAL.
REFRESH_MARGIN_SECONDS = 300.0
# After a 5xx without Retry-After from the token endpoint, MSAL answers from its throttle cache for 5 s.
MSAL_5XX_HOLD_SECONDS = 5.0


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it stops being served from cache; the value never shows in repr."""

    value: str = field(repr=False)
    expires_at: float  # time.monotonic() deadline

    def fresh(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) < self.expires_at


def load_certificate_credential(path: Path) -> dict[str, str]:
    """MSAL client_credential from a PEM holding the private key and the certificate (SHA-1 thumbprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    pem = path.read_bytes()
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise GraphAuthenticationFailed(
            f"MS_AUTH_CERTIFICATE_PATH ({path}) holds no PEM certificate.",
            code="certificate_unreadable",
            action="Give a PEM file with both the private key and the certificate (-----BEGIN CERTIFICATE-----).",
        ) from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise GraphAuthenticationFailed(
            f"MS_AUTH_CERTIFICATE_PATH ({path}) holds no unencrypted PEM private key.",
            code="certificate_unreadable",
            action="Add the certificate's private key, without a passphrase, to the same PEM file.",
        ) from exc
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's x5t is SHA-1
    return {"private_key": private_pem, "thumbprint": thumbprint}


class _MsalHttpClient:
    """The HTTP client MSAL uses: explicit CA trust and timeout, whatever REQUESTS_CA_BUNDLE says."""

    def __init__(self, config: GraphConfig) -> None:
        self._client = httpx.Client(
            verify=config.ssl_context(),
            timeout=httpx.Timeout(config.timeout_seconds),
            headers={"User-Agent": "equa-microsoft"},
        )

    def post(
        self,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        **_ignored: Any,
    ) -> httpx.Response:
        if isinstance(data, str | bytes):
            return self._client.post(url, params=params, content=data, headers=headers)
        if isinstance(data, dict):
            # MSAL gives the signed client assertion as bytes; httpx would send their repr, not their text.
            data = {k: v.decode("ascii") if isinstance(v, bytes) else v for k, v in data.items()}
        return self._client.post(url, params=params, data=data, headers=headers)

    def get(self, url: str, params: Any = None, headers: Any = None, **_ignored: Any) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers)

    def close(self) -> None:
        self._client.close()


def msal_http_client(config: GraphConfig) -> _MsalHttpClient:
    """An HTTP client for MSAL that several TokenProviders (one per tenant) may share; its owner closes it."""
    return _MsalHttpClient(config)


# MS_AUTH_TENANT_ID values that name no tenant: the app is multi-tenant and each call names its tenant.
SHARED_AUTHORITIES = frozenset({"organizations", "common"})


class TokenProvider:
    """App-only tokens for Graph. Single-flight: concurrent callers on a cold cache share one acquisition.

    One provider serves one tenant (its own MSAL app, token cache and lock). Given `http`, it signs in through
    that shared client and leaves closing it to its owner.
    """

    def __init__(self, config: GraphConfig, *, http: _MsalHttpClient | None = None) -> None:
        self._config = config
        self._app: Any = None
        self._shared_http = http
        self._http: _MsalHttpClient | None = None
        self._token: AccessToken | None = None
        # The secret the MSAL app was built with, to notice a rotated MS_AUTH_SECRET_FILE.
        self._secret_in_use: str | None = None
        self._lock = asyncio.Lock()
        self.acquisitions = 0

    def __repr__(self) -> str:
        return f"TokenProvider(authority={self._config.authority!r}, client_id={self._config.client_id!r})"

    @property
    def tenant_id(self) -> str:
        return self._config.tenant_id

    async def get_token(self) -> str:
        token = self._token
        if token is not None and token.fresh():
            return token.value
        async with self._lock:
            token = self._token
            if token is not None and token.fresh():
                return token.value
            token = await asyncio.to_thread(self._acquire)
            self._token = token
            return token.value

    async def invalidate(self, rejected: str | None = None) -> None:
        """Forget the cached token (after a Graph 401/403) so the next call fetches a new one.

        Given the rejected token, only that one is dropped: fifty callers rejected at once cause one refresh.
        """
        async with self._lock:
            if self._token is None or (rejected is not None and self._token.value != rejected):
                return
            self._token = None
            if self._app is not None:
                self._app.remove_tokens_for_client()
            log.info("access token invalidated after Graph rejected it")

    async def claims(self) -> dict[str, Any]:
        """The current token's claims, unverified: used by diagnosis to see whether roles were consented."""
        import jwt

        value = await self.get_token()
        try:
            return dict(jwt.decode(value, options={"verify_signature": False}))
        except jwt.PyJWTError:
            return {}

    def close(self) -> None:
        self._close_app()
        self._token = None

    def _close_app(self) -> None:
        if self._http is not None:
            self._close_own(self._http)
        self._http = None
        self._app = None

    def _secret_was_rotated(self) -> bool:
        if self._config.client_secret_file is None or self._config.certificate_path is not None:
            return False
        return self._config.current_client_secret() not in (None, self._secret_in_use)

    # --- runs in a worker thread -------------------------------------------------------------------------

    def _build_app(self) -> Any:
        import msal

        config = self._config
        if not config.client_id or not config.tenant_id:
            raise GraphAuthenticationFailed(
                "The Microsoft app is not configured.",
                code="not_configured",
                action="Set MS_AUTH_CLIENT_ID and MS_AUTH_TENANT_ID.",
            )
        if config.tenant_id.lower() in SHARED_AUTHORITIES:
            raise GraphAuthenticationFailed(
                "No Microsoft 365 tenant is connected: in multi-tenant mode every call goes to an "
                "organization's own tenant.",
                code="tenant_not_connected",
                action="Connect the organization's Microsoft 365 tenant (Connect Microsoft 365 on its settings "
                "page).",
            )
        credential: Any
        if config.certificate_path is not None:
            credential = load_certificate_credential(config.certificate_path)
        elif (secret := config.current_client_secret()) is not None:
            credential = secret
            self._secret_in_use = secret
        else:
            raise GraphAuthenticationFailed(
                "No client credential is configured.",
                code="not_configured",
                action="Set MS_AUTH_CERTIFICATE_PATH (recommended) or MS_AUTH_SECRET / MS_AUTH_SECRET_FILE.",
            )
        http = self._shared_http or _MsalHttpClient(config)
        try:
            app = msal.ConfidentialClientApplication(
                config.client_id,
                client_credential=credential,
                authority=config.authority,
                http_client=http,
                instance_discovery=config.is_microsoft_authority,
                validate_authority=config.is_microsoft_authority,
            )
        except ValueError as exc:
            self._close_own(http)
            raise _discovery_error(_chain_text(exc), config) from None
        except httpx.HTTPError as exc:
            self._close_own(http)
            raise _unreachable(exc, config) from None
        self._http = http
        return app

    def _close_own(self, http: _MsalHttpClient) -> None:
        if http is not self._shared_http:
            http.close()

    def _acquire(self) -> AccessToken:
        from msal.exceptions import MsalServiceError

        started = time.monotonic()
        try:
            if self._app is None:
                self._app = self._build_app()
            result = self._app.acquire_token_for_client(scopes=[self._config.scope])
            if "access_token" not in result and self._secret_was_rotated():
                # The secret was refused and the file now holds another one: sign in again with it.
                log.info("client secret file changed; signing in with the new secret")
                self._close_app()
                self._app = self._build_app()
                result = self._app.acquire_token_for_client(scopes=[self._config.scope])
        except GraphError:
            GRAPH_TOKEN_ACQUISITIONS.labels("failed").inc()
            raise
        except MsalServiceError as exc:
            # MSAL raises this itself when the token endpoint answers 5xx.
            GRAPH_TOKEN_ACQUISITIONS.labels("failed").inc()
            raise GraphTransient(
                f"The Microsoft sign-in service failed: {str(exc)[:200]}",
                # MSAL replays a 5xx without calling the endpoint for this long, so an earlier retry is futile.
                retry_after=MSAL_5XX_HOLD_SECONDS,
                code="token_endpoint_unavailable",
                action="Wait and try again; check https://status.cloud.microsoft if it persists.",
            ) from None
        except httpx.HTTPStatusError as exc:
            GRAPH_TOKEN_ACQUISITIONS.labels("failed").inc()
            raise GraphTransient(
                f"The Microsoft sign-in service answered HTTP {exc.response.status_code}.",
                status=exc.response.status_code,
                code="token_endpoint_unavailable",
                action="Wait and try again; check https://status.cloud.microsoft if it persists.",
            ) from None
        except httpx.HTTPError as exc:
            GRAPH_TOKEN_ACQUISITIONS.labels("failed").inc()
            raise _unreachable(exc, self._config) from None
        if "access_token" not in result:
            GRAPH_TOKEN_ACQUISITIONS.labels("failed").inc()
            error = classify_token_error(result)
            log.warning("token acquisition failed: %s (%s)", error.code, error.request_id)
            raise error
        self.acquisitions += 1
        source = result.get("token_source", "identity_provider")
        GRAPH_TOKEN_ACQUISITIONS.labels("cache" if source == "cache" else "issued").inc()
        expires_in = float(result.get("expires_in") or 3599)
        margin = min(REFRESH_MARGIN_SECONDS, expires_in / 2)
        log.debug("access token obtained from %s in %.3f s", source, time.monotonic() - started)
        return AccessToken(result["access_token"], started + expires_in - margin)


def _unreachable(exc: Exception, config: GraphConfig) -> GraphTransient:
    return GraphTransient(
        f"The Microsoft sign-in service at {config.authority_host} could not be reached "
        f"({type(exc).__name__}).",
        code="authority_unreachable",
        action="Check MS_AUTHORITY_HOST, the network path to it (proxy, firewall), and MS_CA_BUNDLE if it "
        "uses a private CA.",
    )


def _chain_text(exc: BaseException) -> str:
    """MSAL wraps the discovery answer (which holds the AADSTS code) in a generic error: read the whole chain."""
    texts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(texts) < 5:
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(texts)


def _discovery_error(text: str, config: GraphConfig) -> GraphError:
    """MSAL raises ValueError when the authority's OIDC discovery fails; unknown tenants end up here."""
    if (
        "90002" in text
        or "invalid_tenant" in text
        or "HTTP status: 400" in text
        or "HTTP status: 404" in text
    ):
        error = classify_token_error(
            {"error": "invalid_tenant", "error_codes": [90002], "error_description": ""}
        )
        error.message = f"The tenant '{config.tenant_id}' was not found at {config.authority_host}."
        error.args = (error.message,)
        return error
    return GraphAuthenticationFailed(
        f"The sign-in authority {config.authority} is not usable: {text.split(' | ')[0][:300]}",
        code="authority_invalid",
        action="Check MS_AUTHORITY_HOST and MS_AUTH_TENANT_ID.",
    )
