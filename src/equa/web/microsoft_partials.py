"""Rendering of the Microsoft 365 section's partials: their shared context, problems, notices and the status card.

Every partial is a template under templates/microsoft/. An action's answer is the partial it changed; other parts it
changed come along as out-of-band swaps (the notice, the status card) or as events named in HX-Trigger that make
those parts reload themselves (members, flagged list).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.sessions import csrf_token_for
from equa.deps import read_cache_for
from equa.errors import AppError
from equa.microsoft import groups, vocabulary
from equa.microsoft.graph import GraphClient, GraphError
from equa.microsoft.models import SyncRun
from equa.microsoft.problems import graph_problem
from equa.microsoft.scope import GroupScope
from equa.microsoft.status import OK, StatusCache, get_status
from equa.microsoft.sync import runs
from equa.microsoft.tenants.routing import status_graph, tenant_status
from equa.organizations.deps import OrgContext
from equa.plain_words import field_words
from equa.web.templating import render

# Events a response names in HX-Trigger; the parts listening for them reload from their own routes.
MEMBERS_CHANGED = "ms-members"
FLAGS_CHANGED = "ms-flagged"
FLAG_DECIDED = "ms-flag-decided"  # a shown sync result re-renders its flagged people
EXCLUSIONS_CHANGED = "ms-exclusions"  # someone was removed from the group by hand

_URL = re.compile(r"(https://\S+)")


def text_with_links(text: str | None) -> list[tuple[str, bool]]:
    """Split an action into (text, is_link) parts: actions may carry a URL (the admin-consent page)."""
    return [(part, bool(_URL.fullmatch(part))) for part in _URL.split(text or "") if part]


def section_path(org_id: uuid.UUID) -> str:
    return f"/organizations/{org_id}/settings/microsoft"


def partial_context(request: Request, context: OrgContext, **extra: Any) -> dict[str, Any]:
    """What every partial may use: the organization, its routes' base path, the vocabulary and the CSRF token."""
    organization = context.organization
    return {
        "org": organization,
        "base": section_path(organization.id),
        "csrf_token": csrf_token_for(request),
        "vocab": vocabulary,
        "links": text_with_links,
        "group_scope": GroupScope.from_settings(request.app.state.settings),
        "multi_tenant": request.app.state.settings.multi_tenant,
    } | extra


def partial(
    request: Request,
    template: str,
    page: dict[str, Any],
    *,
    status_code: int = 200,
    trigger: list[str] | None = None,
    retarget: str | None = None,
) -> HTMLResponse:
    response = render(request, f"microsoft/{template}", page, status_code=status_code)
    if trigger:
        response.headers["HX-Trigger"] = ", ".join(trigger)
    if retarget:
        response.headers["HX-Retarget"] = retarget
        response.headers["HX-Reswap"] = "outerHTML"
    return response


def section(
    request: Request,
    context: OrgContext,
    notice: str,
    *,
    run: SyncRun | None = None,
    restore: bool = False,
    **extra: Any,
) -> HTMLResponse:
    """The whole section again, after the link changed: what is shown is what is stored. `run`: a preview started
    with the new link, shown (and polled) in the sync result's place. `restore`: the notice offers to restore the
    deleted group. `extra`: more of the page's context (the tenant connection's card)."""
    page = partial_context(request, context, ms_notice=notice, ms_run=run, ms_restore=restore, **extra)
    response = render(request, "_microsoft.html", page)
    response.headers["HX-Retarget"] = "#microsoft"
    # The section's layout changes: bring its result (at the section's top) into view.
    response.headers["HX-Reswap"] = "outerHTML show:#ms-notice:top"
    return response


async def problem_of(request: Request, session: AsyncSession, error: Exception) -> AppError:
    """The AppError to show for a failed action. A refusal changes nothing (rolled back); a Graph failure keeps
    what the service recorded about the attempt (its audit event, or the clearing of a link to a deleted group),
    as the JSON API does."""
    if isinstance(error, AppError) and not isinstance(error, groups.GroupMissing):
        await session.rollback()
        # The rollback expired what the request had loaded (its organization, its user); the partial that shows
        # the refusal reads them, so they are read again now rather than lazily (which async IO cannot do).
        for loaded in list(session.identity_map.values()):
            with contextlib.suppress(InvalidRequestError):  # a row the refused change had made is gone
                await session.refresh(loaded)
        return error
    if isinstance(error, GraphError):
        return graph_problem(error, request.app.state.settings)
    assert isinstance(error, AppError)
    return error


async def preview_after_link(session: AsyncSession, context: OrgContext) -> SyncRun | None:
    """A preview (dry run) of the group just linked or created, so that the flags and the members' marks agree
    from the first view. Committed at once: the page polls for the run straight away."""
    try:
        run = await runs.request_sync(session, context.organization, context.user, True, "web")
    except AppError:
        return None  # nothing to preview after all (the link was cleared meanwhile): the section says so
    await session.commit()
    return run


def field_errors(error: ValidationError) -> dict[str, str]:
    """Pydantic's errors by form field name (the API's camelCase aliases), in plain words, for the messages next
    to the fields."""
    found: dict[str, str] = {}
    for item in error.errors():
        name = str(item["loc"][-1]) if item["loc"] else ""
        found.setdefault(name, field_words(name, str(item["type"]), str(item["msg"]), item.get("ctx")))
    return found


def problem_fields(problem: AppError) -> dict[str, str]:
    """A refusal about one field of a form, as the message at that field (else {}: the problem box shows it)."""
    if problem.code == "microsoft_nickname_taken":
        taken = problem.extra.get("mailNickname") or "this nickname"
        return {
            "mailNickname": f"Nickname taken: another group or mailbox in the tenant uses “{taken}”. "
            "Choose another, or leave it empty to derive one from the group's name."
        }
    if problem.code == "validation_failed":
        return {
            str(item["field"]): str(item.get("detail") or item["message"])
            for item in problem.extra.get("errors", [])
            if isinstance(item, dict) and "field" in item
        }
    return {}


async def status_card(
    request: Request,
    session: AsyncSession,
    context: OrgContext,
    graph: GraphClient | None,
    cache: StatusCache,
    *,
    recount: bool = False,
) -> dict[str, Any]:
    """The status card's context. `recount` after our own member changes: the cached summary may be a minute
    old, and the group's own details carry the count that matches the member list shown below it."""
    settings = request.app.state.settings
    tenant = None
    if settings.multi_tenant:
        # The organization's own tenant answers for its group (none when it is not connected or revoked).
        tenant, graph = await status_graph(
            session, getattr(request.app.state, "graph", None), settings, context.organization
        )
    status = await get_status(session, graph, cache, context.organization, settings, read_cache_for(request))
    if tenant is not None:
        status = tenant_status(status, tenant, graph, settings)
    member_count = status.group.member_count if status.group else None
    if recount and graph is not None and status.linked and status.health == OK:
        try:
            details = await groups.group_details(
                session,
                graph,
                context.organization,
                context.user,
                scope=GroupScope.from_settings(request.app.state.settings),
            )
            member_count = details.member_count
        except (AppError, GraphError):
            pass  # the cached summary's count stays; the card reports health on its next load
    return {"status": status, "member_count": member_count}
