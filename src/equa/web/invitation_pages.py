"""The page behind an invitation link: a newcomer chooses a name and password; someone with an account signs in
and accepts.

The newcomer's form needs no separate CSRF token: the link's own token is in the form's address, and a page on
another site cannot know it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

from equa.accounts.models import DISPLAY_NAME_MAX_LENGTH
from equa.accounts.service import get_user_by_email
from equa.accounts.sessions import csrf_token_for, start_session
from equa.accounts.throttle import lift_newcomers_block
from equa.deps import DbSession
from equa.errors import AppError
from equa.organizations.invitations import (
    OpenInvitation,
    accept_as_newcomer,
    accept_as_user,
    invitation_for_another_address,
    open_invitation,
)
from equa.web.page_session import CSRF_FORM_FIELD, form_token_matches, page_user, see_other
from equa.web.templating import render

router = APIRouter(include_in_schema=False)

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 1024


def _render(
    request: Request, token: str, opened: OpenInvitation, mode: str, status_code: int = 200, **values: Any
) -> Response:
    context: dict[str, Any] = {
        "user": None,
        "token": token,
        "organization_name": opened.organization.name,
        "email": opened.invitation.email,
        "role": opened.invitation.role.value,
        "mode": mode,
        "csrf_token": csrf_token_for(request),
        "errors": {},
        "values": {},
        "problem": None,
    }
    context.update(values)
    return render(request, "invitation.html", context, status_code=status_code)


def _error(request: Request, error: AppError) -> Response:
    return render(request, "error.html", {"user": None, "csrf_token": None, "error": error}, error.status)


@router.get("/invitations/{token}")
async def invitation_page(token: str, request: Request, session: DbSession) -> Response:
    try:
        opened = await open_invitation(session, token[:200])
    except AppError as error:
        return _error(request, error)
    user = await page_user(request, session)
    if user is not None:
        if user.email_normalized != opened.invitation.email_normalized:
            return _render(
                request, token, opened, "none", 403, problem=invitation_for_another_address(), user=user
            )
        return _render(request, token, opened, "accept", user=user)
    if await get_user_by_email(session, opened.invitation.email) is not None:
        return _render(request, token, opened, "sign_in")
    return _render(request, token, opened, "new_account")


@router.post("/invitations/{token}")
async def invitation_submit(
    token: str, request: Request, session: DbSession, background: BackgroundTasks
) -> Response:
    token = token[:200]
    form = await request.form()
    try:
        opened = await open_invitation(session, token)
    except AppError as error:
        return _error(request, error)
    user = await page_user(request, session)
    if user is not None:
        if not form_token_matches(request, form.get(CSRF_FORM_FIELD)):
            return _render(request, token, opened, "accept", 403, user=user, problem=_expired_form())
        try:
            await accept_as_user(session, token, user)
        except AppError as error:
            return _render(request, token, opened, "none", error.status, user=user, problem=error)
        return see_other(f"/organizations/{opened.organization.id}/settings")

    name = str(form.get("display_name") or "").strip()[:DISPLAY_NAME_MAX_LENGTH]
    password = str(form.get("password") or "")[:PASSWORD_MAX_LENGTH]
    again = str(form.get("password_again") or "")[:PASSWORD_MAX_LENGTH]
    errors: dict[str, str] = {}
    if not name:
        errors["display_name"] = "Enter your name."
    if len(password) < PASSWORD_MIN_LENGTH:
        errors["password"] = f"Use at least {PASSWORD_MIN_LENGTH} characters."
    elif again != password:
        errors["password_again"] = "The two passwords differ."
    if errors:
        return _render(
            request, token, opened, "new_account", 422, errors=errors, values={"display_name": name}
        )
    try:
        new_user, _ = await accept_as_newcomer(session, token, name, password)
    except AppError as error:
        mode = "sign_in" if error.code == "account_exists" else "none"
        return _render(request, token, opened, mode, error.status, problem=error)
    response = see_other(f"/organizations/{opened.organization.id}/settings")
    await start_session(request, response, new_user, session)
    lift_newcomers_block(request, background, new_user.email)
    return response


def _expired_form() -> AppError:
    return AppError(403, "csrf_failed", "The page expired.", "Reload the page and try again.")
