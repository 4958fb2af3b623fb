"""The ASGI application: identity endpoints, Graph v1.0 with authentication, and the /_emulator controls."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import (  # noqa: F401 - registers the Graph routes
    delta,
    groups,
    memberships,
    organization,
    units,
    users,
)
from .admin import control_routes
from .batch import run_batch
from .consent import admin_consent, admin_consent_form
from .errors import GraphError, error_body
from .faults import DroppedResponse
from .identity import instance_discovery, jwks, openid_configuration, token
from .router import GraphRequest, GraphResponse
from .runtime import FAULT_ERRORS, new_request_id
from .tokens import InvalidToken

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from .runtime import Emulator

UNAUTHORIZED_HEADERS = {
    "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
}
IDENTITY_NOT_FOUND = "The identity of the calling application could not be established."
BAD_JSON = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid "
    "JSON format."
)


def render(response: GraphResponse, request_id: str, client_request_id: str | None) -> Response:
    headers = {
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
        "Cache-Control": "no-cache",
        "Strict-Transport-Security": "max-age=31536000",
        **response.headers,
    }
    if response.body is None:
        return Response(status_code=response.status, headers=headers)
    if isinstance(response.body, str):
        return Response(response.body, status_code=response.status, headers=headers, media_type="text/plain")
    content = json.dumps(response.body, separators=(",", ":")).encode()
    headers.setdefault("Content-Type", "application/json")
    return Response(content, status_code=response.status, headers=headers)


def _error(
    status: int, code: str, message: str, ids: tuple[str, str | None], headers: dict[str, str]
) -> Response:
    body = error_body(code, message, ids[0], ids[1])
    return render(GraphResponse(status, body, {"Content-Type": "application/json", **headers}), *ids)


async def graph_endpoint(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    emu.stats.graph_requests += 1
    request_id = new_request_id()
    client_request_id = request.headers.get("client-request-id")
    ids = (request_id, client_request_id)
    delay = emu.faults.delay_seconds()
    if delay:
        await asyncio.sleep(delay)
    if emu.faults.should_drop():
        emu.stats.fault("drop")
        return DroppedResponse()  # type: ignore[return-value]
    authorization = request.headers.get("authorization", "")
    scheme, _, raw_token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not raw_token.strip():
        return _error(401, "InvalidAuthenticationToken", "Access token is empty.", ids, UNAUTHORIZED_HEADERS)
    try:
        claims = emu.tokens.verify(raw_token.strip())
    except InvalidToken as invalid:
        return _error(401, "InvalidAuthenticationToken", invalid.message, ids, UNAUTHORIZED_HEADERS)
    tenant = emu.directory.tenants.get(claims["tid"])
    app = tenant.apps.get(claims["appid"]) if tenant else None
    if tenant is None:
        return _error(
            401, "InvalidAuthenticationToken", "Access token validation failure.", ids, UNAUTHORIZED_HEADERS
        )
    if app is None:
        # The app's service principal was removed from the tenant after the token was issued (consent revoked).
        return _error(401, "Authorization_IdentityNotFound", IDENTITY_NOT_FOUND, ids, {})
    emu.stats.graph_requests_by_tenant[tenant.id] += 1
    body: Any = None
    raw = await request.body()
    if raw:
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "BadRequest", BAD_JSON, ids, {})
    # The decoded path from the scope: a guest UPN's %23EXT%23 must not be read as a URL fragment.
    path = request.scope["path"][len("/v1.0") :] or "/"
    req = GraphRequest(
        method=request.method,
        path=path,
        query=dict(request.query_params),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        tenant=tenant,
        app=app,
        roles=frozenset(claims.get("roles") or ()),
        request_id=request_id,
        client_request_id=client_request_id,
        graph_base=emu.graph_base,
        raw_query=request.url.query,
    )
    if path.rstrip("/") == "/$batch":
        emu.stats.requests[f"{request.method} /v1.0/$batch"] += 1
        if request.method != "POST":
            return _error(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
                ids,
                {},
            )
        injected = emu.faults.pick_status()
        if injected == 429:
            emu.stats.fault("429")
            return render(emu.throttled(ids, emu.faults.faults.retry_after_seconds, 1), *ids)
        if injected in FAULT_ERRORS:
            emu.stats.fault(str(injected))
            code, message = FAULT_ERRORS[injected]
            retry_after = injected == 503 and emu.faults.faults.retry_after_on_503
            headers = {"Retry-After": str(emu.faults.faults.retry_after_seconds)} if retry_after else {}
            return _error(injected, code, message, ids, headers)
        try:
            response = run_batch(emu, req, new_request_id)
        except GraphError as err:
            return _error(err.status, err.code, err.message, ids, err.headers)
        response.headers["Content-Type"] = "application/json"
        return _answer_or_lose(emu, response, ids)
    return _answer_or_lose(emu, emu.execute(req), ids)


def _answer_or_lose(emu: Emulator, response: GraphResponse, ids: tuple[str, str | None]) -> Response:
    """The answer, unless the lost-answer fault is due: the work is done, the connection closes unanswered."""
    if emu.faults.should_lose_response():
        emu.stats.fault("lost_response")
        return DroppedResponse()  # type: ignore[return-value]
    return render(response, *ids)


def create_app(emu: Emulator) -> Any:
    graph_methods = ["GET", "POST", "PATCH", "DELETE", "PUT"]
    routes = [
        *control_routes(),
        Route("/v1.0/{path:path}", graph_endpoint, methods=graph_methods),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
        Route("/{tenant}/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/{tenant}/discovery/v2.0/keys", jwks, methods=["GET"]),
        Route("/{tenant}/discovery/instance", instance_discovery, methods=["GET"]),
        Route("/{tenant}/v2.0/adminconsent", admin_consent, methods=["GET"]),
        Route("/{tenant}/adminconsent", admin_consent, methods=["GET"]),
        Route("/{tenant}/v2.0/adminconsent", admin_consent_form, methods=["POST"]),
        Route("/{tenant}/adminconsent", admin_consent_form, methods=["POST"]),
    ]
    starlette = Starlette(routes=routes)
    starlette.state.emulator = emu

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Keep the server's own send so an injected fault can close the connection without answering.
        scope["emulator.raw_send"] = send
        await starlette(scope, receive, send)

    return app
