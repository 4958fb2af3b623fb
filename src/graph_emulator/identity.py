"""Identity platform endpoints: OIDC discovery, JWKS, client-credentials token, admin consent."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit

import jwt
from cryptography import x509
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .faults import DroppedResponse
from .state import App, Tenant
from .tokens import GRAPH_AUDIENCE, certificate_thumbprint, x5t_to_hex

if TYPE_CHECKING:
    from .runtime import Emulator

GRAPH_DEFAULT_SCOPE = f"{GRAPH_AUDIENCE}/.default"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Graph named by its URI or by its application id, as the SDKs and azure-identity may write it.
GRAPH_SCOPES = {GRAPH_DEFAULT_SCOPE, f"{GRAPH_APP_ID}/.default"}
MULTI_TENANT = {"common", "organizations", "consumers"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def _aad_timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def aad_error(
    status: int, error: str, code: int, text: str, correlation_id: str | None = None
) -> JSONResponse:
    """An identity-platform error body: error, error_description with trace lines, error_codes, ids."""
    trace_id = str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    stamp = _aad_timestamp()
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return JSONResponse(body, status_code=status, headers={**NO_STORE, "x-ms-request-id": trace_id})


def tenant_not_found(tenant_ref: str, correlation_id: str | None, discovery: bool) -> JSONResponse:
    if discovery:
        return aad_error(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant_ref}' not found. Check to make sure you have the correct tenant ID and are signing "
            "into the correct cloud. Check with your subscription administrator, this may happen if there are no "
            "active subscriptions for the tenant.",
            correlation_id,
        )
    return aad_error(
        400,
        "invalid_request",
        90002,
        f"Tenant '{tenant_ref}' not found. This may happen if there are no active subscriptions for the tenant. "
        "Check to make sure you have the correct tenant ID. Check with your subscription administrator.",
        correlation_id,
    )


def discovery_document(emu: Emulator, tenant: Tenant | None, tenant_ref: str = "") -> dict[str, Any]:
    """A tenant's OIDC metadata; for /common and /organizations, the multi-tenant form with a {tenantid} issuer."""
    base = f"{emu.base_url}/{tenant.id if tenant else tenant_ref}"
    issuer = f"{base}/v2.0" if tenant else f"{emu.base_url}/{{tenantid}}/v2.0"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{emu.base_url}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver"],
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": "EU" if tenant else None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


async def _apply_faults(emu: Emulator) -> Response | None:
    delay = emu.faults.delay_seconds()
    if delay:
        await asyncio.sleep(delay)
    if emu.faults.should_drop():
        emu.stats.fault("drop")
        return DroppedResponse()  # type: ignore[return-value]
    return None


async def openid_configuration(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    tenant_ref = request.path_params["tenant"]
    if tenant_ref.lower() in MULTI_TENANT:
        return JSONResponse(discovery_document(emu, None, tenant_ref.lower()))
    tenant = emu.directory.resolve(tenant_ref)
    if tenant is None:
        return tenant_not_found(tenant_ref, request.headers.get("client-request-id"), discovery=True)
    return JSONResponse(discovery_document(emu, tenant))


async def instance_discovery(request: Request) -> Response:
    """/common/discovery/instance: MSAL and azure-identity ask it whether the authority host is known."""
    emu: Emulator = request.app.state.emulator
    host = request.url.netloc
    endpoint = request.query_params.get("authorization_endpoint", "")
    # The tenant is the first path segment (MSAL drops the port from the host it sends).
    tenant_ref = urlsplit(endpoint).path.strip("/").split("/", 1)[0] or "common"
    body = {
        "tenant_discovery_endpoint": f"{emu.base_url}/{tenant_ref}/v2.0/.well-known/openid-configuration",
        "api-version": request.query_params.get("api-version", "1.1"),
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }
    return JSONResponse(body)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 2.3.1): form-encoded id and secret, joined by a colon, in base64."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


async def jwks(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    return JSONResponse(emu.tokens.jwks())


def _check_secret(app: App, secret: str, correlation: str | None) -> Response | None:
    now = dt.datetime.now(dt.UTC)
    for candidate in app.secrets:
        if candidate.value == secret:
            if candidate.expires is not None and candidate.expires < now:
                return aad_error(
                    401,
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{app.client_id}' are expired. Visit the Azure "
                    "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
                    "certificate credentials for added security: https://aka.ms/certCreds.",
                    correlation,
                )
            return None
    return aad_error(
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
        f"not the client secret ID, for a secret added to app '{app.client_id}'.",
        correlation,
    )


def _check_assertion(
    app: App, assertion: str, token_endpoint: str, correlation: str | None
) -> Response | None:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return aad_error(400, "invalid_request", 50027, "JWT token is invalid or malformed.", correlation)
    x5t = header.get("x5t#S256") or header.get("x5t")
    sha256 = "x5t#S256" in header
    if not x5t:
        return aad_error(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The key was not found.]",
            correlation,
        )
    try:
        thumbprint = x5t_to_hex(x5t)
    except ValueError:
        return aad_error(400, "invalid_request", 50027, "JWT token is invalid or malformed.", correlation)
    key = None
    for cert in app.certificates:
        if (cert.sha256_hex if sha256 else cert.thumbprint_hex) == thumbprint:
            key = cert.public_key
            if key is None and header.get("x5c"):
                # Registered by thumbprint only: the assertion must carry the certificate itself.
                carried = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
                if certificate_thumbprint(carried) == thumbprint:
                    key = carried.public_key()
            break
    if key is None:
        return aad_error(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key "
            f"used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS "
            "Graph to see configured keys for app Id "
            f"'{app.client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments "
            "if you are not using the global cloud.]",
            correlation,
        )
    try:
        claims = jwt.decode(
            assertion,
            key,  # type: ignore[arg-type]
            algorithms=["RS256", "PS256"],
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        return aad_error(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The provided signature value did not match "
            "the expected signature value.]",
            correlation,
        )
    now = time.time()
    if claims.get("exp", 0) < now - 300 or claims.get("nbf", 0) > now + 300:
        return aad_error(
            401, "invalid_client", 700024, "Client assertion is not within its valid time range.", correlation
        )
    audiences = claims.get("aud")
    audience_list = audiences if isinstance(audiences, list) else [audiences]
    if token_endpoint not in audience_list:
        return aad_error(
            401,
            "invalid_client",
            700021,
            f"Client assertion audience claim does not match Realm issuer. Review the documentation at "
            f"https://aka.ms/certCreds . Expected audience: '{token_endpoint}'.",
            correlation,
        )
    if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
        return aad_error(
            401,
            "invalid_client",
            700023,
            "Client assertion audience claim does not match Realm issuer. The 'iss' and 'sub' claims must be "
            "the client id.",
            correlation,
        )
    return None


def missing_service_principal(app_id: str, tenant_id: str, correlation: str | None) -> JSONResponse:
    """The app is registered, but has no service principal in this tenant (no admin consent, or revoked)."""
    return aad_error(
        401,
        "invalid_client",
        7000229,
        f"The client application {app_id} is missing service principal in the tenant {tenant_id}. See "
        "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
        correlation,
    )


async def token(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    emu.stats.token_requests += 1
    requested = emu.directory.resolve(request.path_params["tenant"])
    emu.stats.count_token_request(requested.id if requested else request.path_params["tenant"].lower())
    faulted = await _apply_faults(emu)
    if faulted is not None:
        return faulted
    outage = emu.faults.token_outage()
    correlation = request.headers.get("client-request-id")
    if outage == "drop":
        emu.stats.fault("token_drop")
        return DroppedResponse()  # type: ignore[return-value]
    if outage == "503":
        emu.stats.fault("token_503")
        return aad_error(
            503,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
            correlation,
        )
    tenant_ref = request.path_params["tenant"]
    if tenant_ref.lower() in MULTI_TENANT:
        # An app token names its tenant: Microsoft refuses the client-credentials grant on shared authorities.
        return aad_error(
            400,
            "invalid_request",
            9001023,
            "The grant type is not supported over the /common or /consumers endpoints. Please use the "
            "/organizations or tenant-specific endpoint.",
            correlation,
        )
    tenant = emu.directory.resolve(tenant_ref)
    if tenant is None:
        return tenant_not_found(tenant_ref, correlation, discovery=False)
    form = await request.form()
    fields = {key: str(value) for key, value in form.items()}
    basic = basic_credentials(request.headers.get("authorization", ""))
    if basic is not None:
        if fields.get("client_id") and fields["client_id"] != basic[0]:
            return aad_error(
                400,
                "invalid_request",
                900144,
                "The client_id in the request body does not match the one in the Authorization header.",
                correlation,
            )
        fields["client_id"], fields["client_secret"] = basic
    for required in ("grant_type", "client_id", "scope"):
        if not fields.get(required):
            return aad_error(
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{required}'.",
                correlation,
            )
    if fields["grant_type"] != "client_credentials":
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{fields['grant_type']}'.",
            correlation,
        )
    app = tenant.apps.get(fields["client_id"])
    registered = emu.directory.registrations.get(fields["client_id"])
    if (
        app is None
        and registered is not None
        and (registered.multi_tenant or registered.home_tenant_id == tenant.id)
    ):
        return missing_service_principal(registered.client_id, tenant.id, correlation)
    if app is None:
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{fields['client_id']}' was not found in the directory "
            f"'{tenant_ref}'. This can happen if the application has not been installed by the administrator of "
            "the tenant or consented to by any user in the tenant. You may have sent your authentication request "
            "to the wrong tenant.",
            correlation,
        )
    scope = fields["scope"].strip()
    if scope not in GRAPH_SCOPES:
        if not scope.endswith("/.default"):
            return aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
                correlation,
            )
        return aad_error(
            400,
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
            correlation,
        )
    token_endpoint = f"{emu.base_url}/{tenant.id}/oauth2/v2.0/token"
    if fields.get("client_secret"):
        failure = _check_secret(app, fields["client_secret"], correlation)
    elif fields.get("client_assertion"):
        if fields.get("client_assertion_type") != ASSERTION_TYPE:
            return aad_error(400, "invalid_request", 50027, "Invalid client_assertion_type.", correlation)
        # MSAL sets the audience to the token endpoint it discovered (tenant id or domain in the path).
        endpoint_as_called = f"{emu.base_url}/{tenant_ref}/oauth2/v2.0/token"
        failure = _check_assertion(app, fields["client_assertion"], token_endpoint, correlation)
        if failure is not None and endpoint_as_called != token_endpoint:
            failure = _check_assertion(app, fields["client_assertion"], endpoint_as_called, correlation)
    else:
        return aad_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            correlation,
        )
    if failure is not None:
        return failure
    access_token, lifetime = emu.tokens.issue(
        tenant.id,
        app.client_id,
        app.display_name,
        app.service_principal_id,
        sorted(app.roles),
        f"https://sts.windows.net/{tenant.id}/",
    )
    emu.stats.count_token_issued(tenant.id)
    body = {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }
    return JSONResponse(body, headers={**NO_STORE, "x-ms-request-id": str(uuid.uuid4())})
