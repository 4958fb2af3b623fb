"""Pages of my organizations and of one organization's settings: General, Team, and the Microsoft 365 section."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.accounts.sessions import csrf_token_for
from equa.deps import DbSession
from equa.errors import AppError
from equa.microsoft.scope import GroupScope
from equa.organizations.creation_policy import ensure_may_create_organization, may_create_organization
from equa.organizations.deps import OrgContext, membership_context
from equa.organizations.invitations import invite, pending_invitations
from equa.organizations.models import Role
from equa.organizations.routes import public_link as page_link
from equa.organizations.service import (
    change_role,
    create_organization,
    list_members,
    organizations_of,
    remove_member,
)
from equa.web import forms
from equa.web.microsoft_partials import partial_context
from equa.web.page_session import CSRF_FORM_FIELD, form_token_matches, page_user, see_other, to_login
from equa.web.templating import render
from equa.web.tenant_pages import tenant_context

router = APIRouter(include_in_schema=False)

# Notices after a redirect are chosen from this list by key, so a crafted URL cannot put words in the page.
NOTICES = {
    "renamed": "The organization's name was saved.",
    "invited": "Invitation made. Send the person this link: it works once, for 7 days, and is not shown again.",
    "role": "The role was changed.",
    "removed": "The person was removed from the team.",
    "created": "The organization was created. You are its admin.",
}


def group_scope_of(request: Request) -> GroupScope:
    """MS_GROUP_SCOPE, for the section's sentence about which groups can be linked."""
    return GroupScope.from_settings(request.app.state.settings)


def microsoft_section_visible(request: Request, context: OrgContext) -> bool:
    """The section exists only for admins of an organization on a service with the integration enabled."""
    return bool(request.app.state.settings.ms_auth_enabled) and context.is_admin


def _base_context(request: Request, user: User) -> dict[str, Any]:
    return {"user": user, "csrf_token": csrf_token_for(request)}


def _organizations_context(request: Request, user: User) -> dict[str, Any]:
    return _base_context(request, user) | {
        "may_create": may_create_organization(user, request.app.state.settings)
    }


def _error_page(request: Request, user: User | None, error: AppError) -> Response:
    context = {"user": user, "csrf_token": csrf_token_for(request), "error": error}
    return render(request, "error.html", context, status_code=error.status)


async def _org_context(session: AsyncSession, user: User, org_id: uuid.UUID) -> OrgContext:
    return await membership_context(session, org_id, user)


@router.get("/organizations")
async def my_organizations(request: Request, session: DbSession, notice: str | None = None) -> Response:
    user = await page_user(request, session)
    if user is None:
        return to_login(request)
    rows = await organizations_of(session, user)
    context = _organizations_context(request, user) | {
        "organizations": rows,
        "errors": {},
        "name": "",
        "notice": NOTICES.get(notice or ""),
    }
    return render(request, "organizations.html", context)


@router.post("/organizations")
async def create_organization_page(request: Request, session: DbSession) -> Response:
    user = await page_user(request, session)
    if user is None:
        return to_login(request)
    form = await request.form()
    if not form_token_matches(request, form.get(CSRF_FORM_FIELD)):
        return _error_page(request, user, _stale_form())
    try:
        ensure_may_create_organization(user, request.app.state.settings)
    except AppError as refused:
        return _error_page(request, user, refused)
    errors: forms.FieldErrors = {}
    name = forms.organization_name(form.get("name"), errors)
    if errors:
        context = _organizations_context(request, user) | {
            "organizations": await organizations_of(session, user),
            "errors": errors,
            "name": name,
            "notice": None,
        }
        return render(request, "organizations.html", context, status_code=422)
    organization = await create_organization(session, name, user)
    return see_other(f"/organizations/{organization.id}/settings?notice=created")


def _stale_form() -> AppError:
    return AppError(
        403,
        "csrf_failed",
        "This form did not carry the page's security token, so nothing was changed.",
        "Go back, reload the page and try again.",
    )


async def _settings_page(
    request: Request,
    session: AsyncSession,
    user: User,
    context: OrgContext,
    *,
    errors: forms.FieldErrors | None = None,
    values: dict[str, str] | None = None,
    notice: str | None = None,
    problem: AppError | None = None,
    invitation_link: str | None = None,
    status_code: int = 200,
    microsoft: dict[str, str | None] | None = None,
) -> Response:
    members = await list_members(session, context.organization)
    invitations = await pending_invitations(session, context.organization) if context.is_admin else []
    page = _base_context(request, user) | {
        "org": context.organization,
        "membership": context.membership,
        "is_admin": context.is_admin,
        "members": members,
        "invitations": invitations,
        "invitation_link": invitation_link,
        "admin_count": sum(1 for m in members if m.role == Role.ADMIN),
        "roles": list(Role),
        "errors": errors or {},
        "values": values or {},
        "notice": notice,
        "problem": problem,
        "show_microsoft": microsoft_section_visible(request, context),
        "group_scope": group_scope_of(request),
    }
    if page["show_microsoft"]:
        page |= partial_context(request, context)
        page |= await tenant_context(request, session, context, **(microsoft or {}))
    return render(request, "settings.html", page, status_code=status_code)


@router.get("/organizations/{org_id}/settings")
async def settings_page(
    org_id: uuid.UUID,
    request: Request,
    session: DbSession,
    notice: str | None = None,
    microsoft: Annotated[str | None, Query(max_length=64)] = None,
    microsoft_error: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    user = await page_user(request, session)
    if user is None:
        return to_login(request)
    try:
        context = await _org_context(session, user, org_id)
    except AppError as error:
        return _error_page(request, user, error)
    # `microsoft` / `microsoft_error`: how the admin consent round trip ended (multi-tenant mode).
    outcome = {"result": microsoft, "failure": microsoft_error}
    return await _settings_page(
        request, session, user, context, notice=NOTICES.get(notice or ""), microsoft=outcome
    )


@router.get("/organizations/{org_id}/settings/microsoft")
async def microsoft_fragment(org_id: uuid.UUID, request: Request, session: DbSession) -> Response:
    """The Microsoft 365 section alone (its partials load from the routes of equa.web.microsoft_pages)."""
    user = await page_user(request, session)
    if user is None:
        return Response("Sign in again.", status_code=401, media_type="text/plain")
    try:
        context = await _org_context(session, user, org_id)
    except AppError:
        return Response("Not found", status_code=404, media_type="text/plain")
    if not microsoft_section_visible(request, context):
        return Response("Not found", status_code=404, media_type="text/plain")
    page = _base_context(request, user) | partial_context(request, context)
    page |= await tenant_context(request, session, context)
    return render(request, "_microsoft.html", page)


async def _admin_form(
    request: Request, session: AsyncSession, org_id: uuid.UUID
) -> tuple[User | None, OrgContext | None, Any, Response | None]:
    """Common checks of every settings form: signed in, a member, an admin, the page's CSRF token."""
    user = await page_user(request, session)
    if user is None:
        return None, None, None, to_login(request)
    form = await request.form()
    try:
        context = await _org_context(session, user, org_id)
    except AppError as error:
        return user, None, form, _error_page(request, user, error)
    if not form_token_matches(request, form.get(CSRF_FORM_FIELD)):
        return user, context, form, _error_page(request, user, _stale_form())
    if not context.is_admin:
        refusal = AppError(
            403, "admin_required", "Only an admin of this organization can do this.", "Ask an admin."
        )
        return user, context, form, _error_page(request, user, refusal)
    return user, context, form, None


@router.post("/organizations/{org_id}/settings/general")
async def rename_organization(org_id: uuid.UUID, request: Request, session: DbSession) -> Response:
    user, context, form, refused = await _admin_form(request, session, org_id)
    if refused is not None:
        return refused
    assert user is not None and context is not None
    errors: forms.FieldErrors = {}
    name = forms.organization_name(form.get("name"), errors)
    if errors:
        return await _settings_page(
            request, session, user, context, errors=errors, values={"name": name}, status_code=422
        )
    context.organization.name = name
    await session.flush()
    return see_other(f"/organizations/{org_id}/settings?notice=renamed#general")


@router.post("/organizations/{org_id}/settings/team")
async def invite_member(org_id: uuid.UUID, request: Request, session: DbSession) -> Response:
    user, context, form, refused = await _admin_form(request, session, org_id)
    if refused is not None:
        return refused
    assert user is not None and context is not None
    errors: forms.FieldErrors = {}
    email = forms.email_address(form.get("email"), errors)
    chosen_role = forms.role(form.get("role"), errors)
    values = {"email": email, "role": chosen_role.value}
    issued = None
    if not errors:
        try:
            issued = await invite(session, context.organization, email, chosen_role, user)
        except AppError as error:
            # The service names the field in its message ("email: ..."); show the rest next to that field.
            errors["email"] = error.message.split(": ", 1)[-1]
    if errors or issued is None:
        return await _settings_page(
            request, session, user, context, errors=errors, values=values, status_code=422
        )
    # The link is shown on this answer only (it is not stored), so the page is rendered here, not redirected to.
    return await _settings_page(
        request,
        session,
        user,
        context,
        notice=NOTICES["invited"],
        invitation_link=page_link(request, issued.path),
        status_code=201,
    )


@router.post("/organizations/{org_id}/settings/team/{member_id}/role")
async def change_member_role(
    org_id: uuid.UUID, member_id: uuid.UUID, request: Request, session: DbSession
) -> Response:
    user, context, form, refused = await _admin_form(request, session, org_id)
    if refused is not None:
        return refused
    assert user is not None and context is not None
    errors: forms.FieldErrors = {}
    new_role = forms.role(form.get("role"), errors)
    if errors:
        return await _settings_page(request, session, user, context, errors=errors, status_code=422)
    try:
        await change_role(session, context.organization, member_id, new_role)
    except AppError as error:
        return await _settings_page(request, session, user, context, problem=error, status_code=error.status)
    return see_other(f"/organizations/{org_id}/settings?notice=role#team")


@router.post("/organizations/{org_id}/settings/team/{member_id}/remove")
async def remove_team_member(
    org_id: uuid.UUID, member_id: uuid.UUID, request: Request, session: DbSession
) -> Response:
    user, context, _form, refused = await _admin_form(request, session, org_id)
    if refused is not None:
        return refused
    assert user is not None and context is not None
    try:
        await remove_member(session, context.organization, member_id)
    except AppError as error:
        return await _settings_page(request, session, user, context, problem=error, status_code=error.status)
    if member_id == user.id:
        return see_other("/organizations?notice=removed")
    return see_other(f"/organizations/{org_id}/settings?notice=removed#team")
