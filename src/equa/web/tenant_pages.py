"""Pages of multi-tenant mode: the tenant card of the Microsoft 365 section (connect, reconnect, disconnect) and
the admin consent's way back (/microsoft/consent-callback), which always ends on the organization's settings page
with what happened, or on an error page that says what to do (never a stack trace)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.sessions import csrf_token_for
from equa.deps import DbSession
from equa.errors import AppError
from equa.microsoft.deps import MicrosoftAdmin, ProcessGraph, require_microsoft_enabled
from equa.microsoft.graph import GraphClient
from equa.microsoft.graph.permissions import group_scope_of, permission_names
from equa.microsoft.tenants.connection import ConsentAnswer, complete_consent, consent_url, disconnect
from equa.microsoft.tenants.problems import CONSENT_FAILURES, not_multi_tenant
from equa.microsoft.tenants.routing import tenant_view
from equa.organizations.deps import OrgContext
from equa.settings import CONSENT_CALLBACK_PATH
from equa.web.microsoft_partials import partial, partial_context, section
from equa.web.page_session import page_user, see_other, to_login
from equa.web.templating import render

PREFIX = "/organizations/{org_id}/settings/microsoft"
router = APIRouter(include_in_schema=False, dependencies=[Depends(require_microsoft_enabled)])

CONNECTED_NOTICE = "Microsoft 365 is connected."


async def tenant_context(
    request: Request,
    session: AsyncSession,
    context: OrgContext,
    *,
    result: str | None = None,
    failure: str | None = None,
) -> dict[str, Any]:
    """What the Microsoft 365 section needs in multi-tenant mode: the connection and the consent's outcome."""
    settings = request.app.state.settings
    if not (settings.ms_auth_enabled and settings.multi_tenant):
        return {}
    graph: GraphClient | None = getattr(request.app.state, "graph", None)
    view = await tenant_view(session, graph, context.organization)
    # The permissions the administrator is asked to accept, from the one list the errors and the check also read.
    page: dict[str, Any] = {
        "ms_connection": view,
        "ms_permissions": permission_names(group_scope_of(settings)),
    }
    if failure in CONSENT_FAILURES:
        page["ms_consent_problem"] = CONSENT_FAILURES[failure]
    elif result == "connected" and view.connection.value == "connected":
        page["ms_notice"] = CONNECTED_NOTICE
    return page


@router.get(CONSENT_CALLBACK_PATH)
async def consent_callback(
    request: Request,
    session: DbSession,
    state: Annotated[str | None, Query(max_length=4096)] = None,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
    admin_consent: Annotated[str | None, Query(max_length=32)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:
    """Microsoft sends the browser back here after the admin consent (Accept or Cancel)."""
    settings = request.app.state.settings
    graph: GraphClient | None = getattr(request.app.state, "graph", None)
    if not settings.multi_tenant or graph is None:
        raise not_multi_tenant()
    user = await page_user(request, session)
    if user is None:
        return to_login(request)
    answer = ConsentAnswer(state, tenant, admin_consent, error, error_description)
    outcome = await complete_consent(session, graph, settings, user, answer)
    if outcome.organization_id is None:
        failure = outcome.failure or CONSENT_FAILURES["state_invalid"]
        problem = AppError(400, f"microsoft_{failure.code}", failure.message, failure.action)
        page = {"user": user, "csrf_token": csrf_token_for(request), "error": problem}
        return render(request, "error.html", page, status_code=400)
    query = f"microsoft_error={outcome.failure.code}" if outcome.failure else "microsoft=connected"
    return see_other(f"/organizations/{outcome.organization_id}/settings?{query}#microsoft")


@router.get(f"{PREFIX}/connection")
async def connection_card(request: Request, context: MicrosoftAdmin, session: DbSession) -> HTMLResponse:
    page = partial_context(request, context, **await tenant_context(request, session, context))
    return partial(request, "connection.html", page)


@router.post(f"{PREFIX}/connect")
async def connect(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: ProcessGraph
) -> Response:
    """Start the admin consent round trip: htmx sends the browser to Microsoft's consent page."""
    try:
        url = await consent_url(
            session, request.app.state.settings, context.organization, context.user, graph=graph
        )
    except AppError as problem:
        page = partial_context(request, context, **await tenant_context(request, session, context))
        page["problem"] = problem
        return partial(request, "connection.html", page, status_code=problem.status)
    return Response(status_code=204, headers={"HX-Redirect": url})


@router.delete(f"{PREFIX}/connection")
async def remove_connection(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: ProcessGraph
) -> HTMLResponse:
    tenant_name = (await tenant_view(session, graph, context.organization)).tenant_name
    await disconnect(session, graph, context.organization, context.user)
    await session.flush()
    extra = await tenant_context(request, session, context)
    name = f"“{tenant_name}”" if tenant_name else "the tenant"
    return section(request, context, f"Disconnected {name}. Its groups stay in Microsoft 365.", **extra)
