"""The admin consent endpoint: a tenant administrator signs in, reads the permissions asked for, accepts or cancels.

`GET /{tenant}/v2.0/adminconsent?client_id=..&scope=..&redirect_uri=..&state=..` (tenant: an id, a domain,
`organizations` or `common`) answers the sign-in page. The forms are plain HTML POSTs back to the same path, each
carrying the flow's id and a token that changes with every page shown. Accept creates the app's service principal
in the administrator's tenant with the application permissions it requests, and redirects to `redirect_uri` with
`admin_consent=True&tenant=..&scope=..&state=..`; Cancel redirects with `error=access_denied` and AADSTS65004.

A tenant named in the path that has no sign-in accounts at all (the default single-tenant seed) consents at once,
as an administrator already signed in who clicks Accept would: no page is shown.
"""

from __future__ import annotations

import datetime as dt
import html
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .identity import GRAPH_DEFAULT_SCOPE, NO_STORE
from .tenancy import ConsentError, consent_possible, grant_consent

if TYPE_CHECKING:
    from .runtime import Emulator
    from .state import App, Tenant

SHARED_AUTHORITIES = {"organizations", "common"}
FLOW_LIFETIME_SECONDS = 30 * 60
MAX_FLOWS = 1000
DECLINED = "AADSTS65004: User declined to consent to access the app."
# Plain words for the permissions the integration asks for (Microsoft's consent page shows the same kind).
PERMISSION_TEXT = {
    "Group.ReadWrite.All": "Read and write all groups",
    "Group.Read.All": "Read all groups",
    "Group.Create": "Create groups",
    "GroupMember.ReadWrite.All": "Read and write all group memberships",
    "GroupMember.Read.All": "Read all group memberships",
    "User.Read.All": "Read all users' full profiles",
    "User.ReadBasic.All": "Read all users' basic profiles",
    "AdministrativeUnit.Read.All": "Read all administrative units",
    "AdministrativeUnit.ReadWrite.All": "Read and write all administrative units",
    "Organization.Read.All": "Read organization information",
    "Directory.Read.All": "Read directory data",
    "Directory.ReadWrite.All": "Read and write directory data",
}


@dataclass
class ConsentFlow:
    """One administrator's way through the pages, from the first GET to Accept or Cancel."""

    id: str
    tenant_ref: str
    client_id: str
    scope: str
    redirect_uri: str
    state: str | None
    v2: bool
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    tenant_id: str | None = None  # set once an administrator has signed in
    admin: str | None = None
    started: float = field(default_factory=time.monotonic)

    def next_token(self) -> str:
        self.token = secrets.token_urlsafe(24)
        return self.token


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _trace() -> str:
    return f"\r\nTrace ID: {uuid.uuid4()}\r\nCorrelation ID: {uuid.uuid4()}\r\nTimestamp: {_stamp()}"


def _redirect(redirect_uri: str, query: dict[str, str]) -> Response:
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(query)}", status_code=302, headers=NO_STORE)


STYLE = """
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;margin:0;color:#1b1b1b}
main{max-width:440px;margin:48px auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:24px;font-weight:600;margin:0 0 16px}
.brand{font-weight:600;color:#5e5e5e;margin-bottom:24px}
label{display:block;margin:12px 0 4px}
input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:6px 0;border:0;
border-bottom:1px solid #666;font-size:15px}
button{padding:6px 24px;font-size:15px;margin:20px 8px 0 0;border:1px solid #0067b8;cursor:pointer}
button.primary{background:#0067b8;color:#fff}
button.secondary{background:#ccc;border-color:#ccc;color:#1b1b1b}
.error{color:#e81123;margin:12px 0}
ul{padding-left:20px}
code{font-size:12px;color:#5e5e5e}
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f'<body><main><div class="brand">Microsoft (emulated)</div>{body}</main></body></html>'
    )
    return HTMLResponse(document, status_code=status, headers=NO_STORE)


def error_page(message: str, status: int = 400) -> HTMLResponse:
    """An error the identity platform shows itself, without redirecting (an untrusted or unusable request)."""
    code = message.split(":", 1)[0]
    body = (
        "<h1>Sorry, but we're having trouble signing you in.</h1>"
        f'<p class="error" role="alert">{html.escape(message)}</p>'
        f"<p><code>{html.escape(code)}</code></p>"
    )
    return _page("Sign in to your account", body, status)


def _hidden(flow: ConsentFlow) -> str:
    return (
        f'<input type="hidden" name="flow" value="{html.escape(flow.id)}">'
        f'<input type="hidden" name="csrf" value="{html.escape(flow.next_token())}">'
    )


def sign_in_page(flow: ConsentFlow, app: App, error: str | None = None, login: str = "") -> HTMLResponse:
    alert = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = (
        "<h1>Sign in</h1>"
        f"<p>to grant <strong>{html.escape(app.display_name)}</strong> access to your organization. "
        "Use a tenant administrator's account.</p>"
        f"{alert}"
        '<form method="post">'
        f"{_hidden(flow)}"
        '<label for="login">Email</label>'
        f'<input type="email" id="login" name="login" value="{html.escape(login)}" autocomplete="username" required>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" required>'
        '<button type="submit" name="action" value="signin" class="primary">Sign in</button>'
        "</form>"
    )
    return _page("Sign in to your account", body)


def consent_page(flow: ConsentFlow, app: App, tenant: Tenant) -> HTMLResponse:
    items = "".join(
        f"<li>{html.escape(PERMISSION_TEXT.get(role, role))} <code>{html.escape(role)}</code></li>"
        for role in sorted(app.requested_roles)
    )
    body = (
        "<h1>Permissions requested</h1>"
        f"<p><strong>{html.escape(app.display_name)}</strong></p>"
        f"<p>Signed in as {html.escape(flow.admin or '')} ({html.escape(tenant.display_name)}).</p>"
        "<p>This application would like to (application permissions, without a signed-in user):</p>"
        f'<ul id="permissions">{items}</ul>'
        f"<p>Accepting grants these permissions for your whole organization, {html.escape(tenant.display_name)}."
        " You can review them later in Enterprise applications.</p>"
        '<form method="post">'
        f"{_hidden(flow)}"
        '<button type="submit" name="action" value="accept" class="primary">Accept</button>'
        '<button type="submit" name="action" value="cancel" class="secondary">Cancel</button>'
        "</form>"
    )
    return _page("Permissions requested", body)


def _flows(emu: Emulator) -> dict[str, ConsentFlow]:
    flows: dict[str, ConsentFlow] = emu.consent_flows
    horizon = time.monotonic() - FLOW_LIFETIME_SECONDS
    for flow_id in [f for f, flow in flows.items() if flow.started < horizon]:
        del flows[flow_id]
    while len(flows) >= MAX_FLOWS:
        flows.pop(next(iter(flows)))
    return flows


def _registered_redirect(app: App, redirect_uri: str) -> bool:
    return not app.redirect_uris or redirect_uri in app.redirect_uris


async def admin_consent(request: Request) -> Response:
    """GET: check the request, then consent at once (a tenant without accounts) or show the sign-in page."""
    emu: Emulator = request.app.state.emulator
    params = request.query_params
    tenant_ref = request.path_params["tenant"]
    shared = tenant_ref.lower() in SHARED_AUTHORITIES
    tenant = None if shared else emu.directory.resolve(tenant_ref)
    if not shared and tenant is None:
        return error_page(
            f"AADSTS90002: Tenant '{tenant_ref}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud."
        )
    client_id = params.get("client_id", "")
    if not client_id:
        return error_page("AADSTS900144: The request body must contain the following parameter: 'client_id'.")
    app = emu.directory.registrations.get(client_id) or (tenant.apps.get(client_id) if tenant else None)
    if app is None:
        return error_page(
            f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant_ref}'. This can happen if the application has not been installed by the administrator of "
            "the tenant or consented to by any user in the tenant. You may have sent your authentication request "
            "to the wrong tenant."
        )
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        return error_page(
            "AADSTS900144: The request body must contain the following parameter: 'redirect_uri'."
        )
    if not _registered_redirect(app, redirect_uri):
        return error_page(
            f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
            f"URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request "
            "matches one added to your application in the Azure portal. Navigate to "
            "https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
        )
    if shared and not app.multi_tenant:
        return error_page(
            f"AADSTS50194: Application '{client_id}'({app.display_name}) is not configured as a multi-tenant "
            "application. Usage of the /common endpoint is not supported for such applications created after "
            "'10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant."
        )
    flow = ConsentFlow(
        id=uuid.uuid4().hex,
        tenant_ref=tenant_ref,
        client_id=client_id,
        scope=params.get("scope", GRAPH_DEFAULT_SCOPE),
        redirect_uri=redirect_uri,
        state=params.get("state"),
        v2="/v2.0/" in request.url.path,
    )
    if tenant is not None and not tenant.accounts:
        return _finish(emu, flow, tenant)
    _flows(emu)[flow.id] = flow
    return sign_in_page(flow, app)


def _finish(emu: Emulator, flow: ConsentFlow, tenant: Tenant) -> Response:
    """Accept: the service principal with its roles in `tenant`, and the redirect back to the app."""
    query: dict[str, str]
    if tenant.decline_consent:
        # A tenant policy refuses the grant (the documented error response of the admin consent endpoint).
        query = {
            "admin_consent": "True",
            "error": "consent_required",
            "error_description": f"AADSTS65004: The resource owner or authorization server denied the request.{_trace()}",
        }
    else:
        try:
            grant_consent(emu.directory, tenant, flow.client_id)
        except ConsentError as refused:
            return error_page(str(refused))
        query = {"admin_consent": "True", "tenant": tenant.id}
        if flow.v2:
            query["scope"] = flow.scope
    if flow.state is not None:
        query["state"] = flow.state
    emu.consent_flows.pop(flow.id, None)
    return _redirect(flow.redirect_uri, query)


def _cancel(emu: Emulator, flow: ConsentFlow) -> Response:
    query = {
        "error": "access_denied",
        "error_subcode": "cancel",
        "error_description": f"{DECLINED}{_trace()}",
        "admin_consent": "False",
    }
    if flow.state is not None:
        query["state"] = flow.state
    emu.consent_flows.pop(flow.id, None)
    return _redirect(flow.redirect_uri, query)


async def admin_consent_form(request: Request) -> Response:
    """POST from the sign-in page (action=signin) or the permissions page (action=accept or cancel)."""
    emu: Emulator = request.app.state.emulator
    form = await request.form()
    fields = {key: str(value) for key, value in form.items()}
    flow = _flows(emu).get(fields.get("flow", ""))
    if flow is None or flow.tenant_ref != request.path_params["tenant"]:
        return error_page(
            "AADSTS90015: The sign-in session was not found or has expired. Go back to the application and "
            "start again."
        )
    if not secrets.compare_digest(fields.get("csrf", ""), flow.token):
        return error_page(
            "AADSTS90023: The request is not valid: the page was changed or sent twice. Start again."
        )
    app = emu.directory.registrations.get(flow.client_id)
    if app is None:
        named = emu.directory.resolve(flow.tenant_ref)
        app = named.apps.get(flow.client_id) if named else None
    if app is None:
        return error_page(f"AADSTS700016: Application with identifier '{flow.client_id}' was not found.")
    action = fields.get("action", "")
    if action == "signin":
        return _sign_in(emu, flow, app, fields.get("login", ""), fields.get("password", ""))
    if flow.tenant_id is None:
        return sign_in_page(flow, app, "Sign in first.")
    tenant = emu.directory.tenants[flow.tenant_id]
    if action == "accept":
        return _finish(emu, flow, tenant)
    if action == "cancel":
        return _cancel(emu, flow)
    return consent_page(flow, app, tenant)


def _sign_in(emu: Emulator, flow: ConsentFlow, app: App, login: str, password: str) -> Response:
    found = emu.directory.find_account(login)
    if found is None:
        return sign_in_page(
            flow, app, "We couldn't find an account with that username. Try another account.", login
        )
    tenant, account = found
    if not secrets.compare_digest(account.password.encode(), password.encode()):
        return sign_in_page(
            flow,
            app,
            "Your account or password is incorrect. (AADSTS50126: Error validating credentials.)",
            login,
        )
    named = (
        emu.directory.resolve(flow.tenant_ref) if flow.tenant_ref.lower() not in SHARED_AUTHORITIES else None
    )
    if named is not None and named.id != tenant.id:
        return sign_in_page(
            flow,
            app,
            f"AADSTS50020: User account '{account.user_principal_name}' does not exist in tenant "
            f"'{named.display_name}' and cannot grant consent there. Sign in with an administrator of that tenant.",
            login,
        )
    if not account.admin:
        return sign_in_page(
            flow,
            app,
            f"Need admin approval: {app.display_name} needs permission to access resources in your organization "
            "that only an admin can grant. Sign in with an administrator account.",
            login,
        )
    try:
        consent_possible(emu.directory, tenant, flow.client_id)
    except ConsentError as refused:
        return error_page(str(refused))
    flow.tenant_id = tenant.id
    flow.admin = account.user_principal_name
    return consent_page(flow, app, tenant)
