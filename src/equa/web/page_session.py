"""Who is looking at a page, and the CSRF checks of page forms (including the sign-in form, before any session)."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.accounts.sessions import CSRF_FORM_FIELD, csrf_token_for, read_session, session_user
from equa.deps import read_cache_for

# Sign-in happens before a session exists, so its form is protected by a double-submit cookie instead.
LOGIN_CSRF_COOKIE = "equa_login_csrf"


async def page_user(request: Request, session: AsyncSession) -> User | None:
    """The signed-in, active user of this browser, or None (pages then send the person to /login)."""
    browser_session = read_session(request)
    if browser_session is None:
        return None
    return await session_user(session, browser_session, read_cache_for(request))


def safe_next(target: str | None, default: str = "/organizations") -> str:
    """Only same-site paths: a crafted ?next= must not send a person to another site after signing in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def form_token_matches(request: Request, sent: object) -> bool:
    """True when a page form echoed this session's CSRF token."""
    expected = csrf_token_for(request)
    return (
        isinstance(sent, str)
        and expected is not None
        and hmac.compare_digest(sent.encode(), expected.encode())
    )


def issue_login_token(request: Request, response: Response) -> str:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.cookies_secure(request.url.scheme),
        path="/login",
    )
    return token


def login_token_matches(request: Request, sent: object) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    return (
        isinstance(sent, str)
        and bool(expected)
        and hmac.compare_digest(sent.encode(), str(expected).encode())
    )


__all__ = [
    "CSRF_FORM_FIELD",
    "form_token_matches",
    "issue_login_token",
    "login_token_matches",
    "page_user",
    "safe_next",
    "see_other",
    "to_login",
]
