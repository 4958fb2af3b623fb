"""Sign-in and sign-out pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from equa.accounts.service import authenticate
from equa.accounts.sessions import csrf_token_for, end_session, start_session
from equa.accounts.throttle import MustWait, client_address, sign_in_throttle, wait_phrase
from equa.deps import DbSession
from equa.web.page_session import (
    CSRF_FORM_FIELD,
    form_token_matches,
    issue_login_token,
    login_token_matches,
    page_user,
    safe_next,
    see_other,
)
from equa.web.templating import render

router = APIRouter(include_in_schema=False)

EMAIL_MAX_LENGTH = 320
PASSWORD_MAX_LENGTH = 1024


@router.get("/")
async def home(request: Request, session: DbSession) -> Response:
    user = await page_user(request, session)
    return see_other("/organizations" if user else "/login")


@router.get("/login")
async def login_form(request: Request, session: DbSession, next: str | None = None) -> Response:
    if await page_user(request, session) is not None:
        return see_other(safe_next(next))
    return _render_login(request, next_url=safe_next(next))


def _render_login(request: Request, status_code: int = 200, **values: object) -> Response:
    token_holder = Response()
    token = issue_login_token(request, token_holder)
    context: dict[str, object] = {
        "email": "",
        "next_url": "/organizations",
        "errors": {},
        "message": None,
        "user": None,
        "login_token": token,
    }
    context.update(values)
    response = render(request, "login.html", context, status_code=status_code)
    for header, value in token_holder.raw_headers:
        if header == b"set-cookie":
            response.raw_headers.append((header, value))
    return response


@router.post("/login")
async def login_submit(request: Request, session: DbSession) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip()[:EMAIL_MAX_LENGTH]
    password = str(form.get("password") or "")[:PASSWORD_MAX_LENGTH]
    next_url = safe_next(str(form.get("next") or ""))
    if not login_token_matches(request, form.get(CSRF_FORM_FIELD)):
        return _render_login(
            request,
            status_code=403,
            email=email,
            next_url=next_url,
            message="The sign-in form expired. Enter your address and password again.",
        )
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return _render_login(request, status_code=422, email=email, next_url=next_url, errors=errors)
    throttle = sign_in_throttle(request)
    keys = throttle.keys_for(email, client_address(request))
    try:
        async with throttle.attempt(keys):
            user = await authenticate(session, email, password)
            if user is None:
                await throttle.failed(keys)
    except MustWait as wait:
        response = _render_login(
            request,
            status_code=429,
            email=email,
            next_url=next_url,
            message=f"Too many failed sign-ins. Wait {wait_phrase(wait.seconds)}, then try again.",
            wait_seconds=wait.seconds,
        )
        response.headers["Retry-After"] = str(wait.seconds)
        return response
    if user is None:
        return _render_login(
            request,
            status_code=401,
            email=email,
            next_url=next_url,
            message="The email or password is not correct. Check both and try again.",
        )
    await throttle.succeeded(keys)
    response = see_other(next_url)
    await start_session(request, response, user, session)
    return response


@router.post("/logout")
async def logout(request: Request, session: DbSession) -> Response:
    form = await request.form()
    response = see_other("/login")
    # Without the page's token this could be a forged cross-site sign-out; the session then stays as it is.
    if csrf_token_for(request) is not None and form_token_matches(request, form.get(CSRF_FORM_FIELD)):
        await end_session(request, response, session)
    return response
