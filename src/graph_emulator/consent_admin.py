"""/_emulator controls for tenants and consent: a small HTML page and the JSON API behind the test helpers."""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .seeds import DEFAULT_CLIENT_ID
from .tenancy import REVOKE_MODES, consent_state, create_tenant, grant_consent, revoke_consent, tenant_view

if TYPE_CHECKING:
    from .runtime import Emulator
    from .state import Tenant


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator  # type: ignore[no-any-return]


def _tenant(request: Request) -> Tenant:
    emu = _emulator(request)
    ref = request.query_params.get("tenant")
    tenant = emu.directory.resolve(ref) if ref else emu.directory.default
    if tenant is None:  # the loopback guard answers 404 before this
        raise KeyError(f"unknown tenant {ref}")
    return tenant


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    body = json.loads(raw) if raw else {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


async def tenants(request: Request) -> Response:
    """GET: every tenant with its sign-in accounts (and passwords) and apps. POST: create a tenant."""
    emu = _emulator(request)
    if request.method == "POST":
        tenant = create_tenant(emu.directory, await _json(request))
        return JSONResponse(tenant_view(emu.directory, tenant), status_code=201)
    return JSONResponse({"value": [tenant_view(emu.directory, t) for t in emu.directory.tenants.values()]})


async def consent(request: Request) -> Response:
    """Every registered app as the tenant (`?tenant=`) sees it: service principal, roles, consented."""
    emu = _emulator(request)
    tenant = _tenant(request)
    return JSONResponse({"tenant": tenant.id, "value": consent_state(emu.directory, tenant)})


async def consent_grant(request: Request) -> Response:
    """Admin consent without the pages: `{"clientId": ...}` (default: the Equa app)."""
    emu = _emulator(request)
    tenant = _tenant(request)
    body = await _json(request)
    grant_consent(emu.directory, tenant, str(body.get("clientId") or DEFAULT_CLIENT_ID))
    return JSONResponse({"tenant": tenant.id, "value": consent_state(emu.directory, tenant)})


async def consent_revoke(request: Request) -> Response:
    """Take consent back: `{"clientId": ..., "mode": "service_principal" | "permissions"}`."""
    emu = _emulator(request)
    tenant = _tenant(request)
    body = await _json(request)
    client_id = str(body.get("clientId") or DEFAULT_CLIENT_ID)
    revoked = revoke_consent(tenant, client_id, str(body.get("mode") or "service_principal"))
    return JSONResponse(
        {"tenant": tenant.id, "revoked": revoked, "value": consent_state(emu.directory, tenant)}
    )


async def redirect_uris(request: Request) -> Response:
    """PUT `{"redirectUris": [...]}`: the app registration's redirect URIs (empty: any redirect is accepted)."""
    emu = _emulator(request)
    client_id = request.path_params["client_id"]
    registration = emu.directory.registrations.get(client_id)
    if registration is None:
        return JSONResponse({"error": f"no app registration {client_id}"}, status_code=404)
    body = await _json(request)
    uris = body.get("redirectUris")
    if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
        raise ValueError('"redirectUris" must be a list of URLs')
    registration.redirect_uris[:] = uris  # shared with every service principal of the app
    return JSONResponse({"clientId": client_id, "redirectUris": list(registration.redirect_uris)})


# ---- the HTML page -----------------------------------------------------------------------------------

UI_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#1b1b1b}table{border-collapse:collapse;margin:8px 0 24px}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}code{font-size:12px}"
    "form{display:inline}button{margin:2px}"
)


def _ui_token(request: Request) -> str:
    state = request.app.state
    if not getattr(state, "ui_token", None):
        state.ui_token = secrets.token_urlsafe(24)
    return str(state.ui_token)


def _consent_form(token: str, tenant: Tenant, client_id: str, action: str, label: str, mode: str = "") -> str:
    mode_field = f'<input type="hidden" name="mode" value="{mode}">' if mode else ""
    return (
        '<form method="post" action="/_emulator/ui/consent">'
        f'<input type="hidden" name="csrf" value="{html.escape(token)}">'
        f'<input type="hidden" name="tenant" value="{html.escape(tenant.id)}">'
        f'<input type="hidden" name="client_id" value="{html.escape(client_id)}">'
        f'<input type="hidden" name="action" value="{action}">{mode_field}'
        f"<button>{html.escape(label)}</button></form>"
    )


async def ui(request: Request) -> Response:
    emu = _emulator(request)
    token = _ui_token(request)
    sections = []
    for tenant in emu.directory.tenants.values():
        accounts = "".join(
            f"<li>{html.escape(a.user_principal_name)} {'(administrator)' if a.admin else ''} "
            f"password <code>{html.escape(a.password)}</code></li>"
            for a in tenant.accounts.values()
        )
        rows = []
        for app in consent_state(emu.directory, tenant):
            actions = _consent_form(token, tenant, app["clientId"], "grant", "Grant consent")
            if app["servicePrincipal"]:
                actions += _consent_form(
                    token, tenant, app["clientId"], "revoke", "Revoke (delete service principal)"
                )
                actions += _consent_form(
                    token, tenant, app["clientId"], "revoke", "Remove permissions", mode="permissions"
                )
            state = (
                "consented"
                if app["consented"]
                else ("no permissions" if app["servicePrincipal"] else "not consented")
            )
            rows.append(
                f"<tr><td>{html.escape(app['displayName'])}<br><code>{html.escape(app['clientId'])}</code></td>"
                f'<td class="consent-state">{state}</td><td>{html.escape(", ".join(app["roles"]))}</td>'
                f"<td>{actions}</td></tr>"
            )
        count = emu.stats.token_requests_by_tenant.get(tenant.id, 0)
        sections.append(
            f'<section id="tenant-{html.escape(tenant.id)}"><h2>{html.escape(tenant.display_name)}</h2>'
            f"<p><code>{html.escape(tenant.id)}</code> {html.escape(tenant.domain)} · size {tenant.size} · "
            f"{len(tenant.users)} users · {len(tenant.groups)} groups · {count} token requests</p>"
            f"<ul>{accounts or '<li>no sign-in accounts</li>'}</ul>"
            "<table><tr><th>App</th><th>Consent</th><th>Roles</th><th></th></tr>"
            f"{''.join(rows)}</table></section>"
        )
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Graph emulator</title>'
        f"<style>{UI_STYLE}</style></head><body><h1>Graph emulator</h1>"
        f"<p>{html.escape(emu.base_url)} · {emu.stats.token_requests} token requests · "
        f"{emu.stats.graph_requests} Graph requests</p>{''.join(sections)}</body></html>"
    )
    return HTMLResponse(document, headers={"Cache-Control": "no-store"})


async def ui_consent(request: Request) -> Response:
    emu = _emulator(request)
    form = await request.form()
    fields = {key: str(value) for key, value in form.items()}
    if not secrets.compare_digest(fields.get("csrf", ""), _ui_token(request)):
        return HTMLResponse("The page was out of date: reload it and try again.", status_code=400)
    tenant = emu.directory.resolve(fields.get("tenant", ""))
    if tenant is None:
        return HTMLResponse("Unknown tenant.", status_code=404)
    if fields.get("action") == "grant":
        grant_consent(emu.directory, tenant, fields.get("client_id", ""))
    elif fields.get("action") == "revoke":
        mode = fields.get("mode") or "service_principal"
        if mode not in REVOKE_MODES:
            raise ValueError(f"mode must be one of {', '.join(REVOKE_MODES)}")
        revoke_consent(tenant, fields.get("client_id", ""), mode)
    else:
        raise ValueError("action must be grant or revoke")
    return RedirectResponse("/_emulator", status_code=303)


def consent_routes(r: Callable[[str, Any, list[str]], Route]) -> list[Route]:
    return [
        r("", ui, ["GET"]),
        r("/ui/consent", ui_consent, ["POST"]),
        r("/tenants", tenants, ["GET", "POST"]),
        r("/consent", consent, ["GET"]),
        r("/consent/grant", consent_grant, ["POST"]),
        r("/consent/revoke", consent_revoke, ["POST"]),
        r("/apps/{client_id}/redirect-uris", redirect_uris, ["PUT"]),
    ]
