"""Browser sessions in a signed cookie, and the CSRF token that goes with each session."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from equa.accounts.models import User
from equa.errors import AppError
from equa.settings import Settings

SESSION_COOKIE = "equa_session"
SESSION_MAX_AGE_SECONDS = 14 * 24 * 3600
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class BrowserSession:
    user_id: uuid.UUID
    csrf_token: str


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.session_secret.get_secret_value(), salt="equa.browser-session")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def read_session(request: Request) -> BrowserSession | None:
    """The session carried by the request's cookie, if its signature and age are valid."""
    cached = request.scope.get("equa.browser_session")
    if isinstance(cached, BrowserSession):
        return cached
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(_settings(request)).loads(raw, max_age=SESSION_MAX_AGE_SECONDS)
        browser_session = BrowserSession(user_id=uuid.UUID(data["u"]), csrf_token=str(data["c"]))
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    request.scope["equa.browser_session"] = browser_session
    return browser_session


def start_session(request: Request, response: Response, user: User) -> str:
    """Sign `user` in on this browser; returns the CSRF token that state-changing requests must echo."""
    csrf_token = secrets.token_urlsafe(32)
    value = _serializer(_settings(request)).dumps({"u": str(user.id), "c": csrf_token})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    request.scope["equa.browser_session"] = BrowserSession(user_id=user.id, csrf_token=csrf_token)
    return csrf_token


def end_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
    request.scope.pop("equa.browser_session", None)


def csrf_token_for(request: Request) -> str | None:
    """The CSRF token for templates: put it in a hidden `csrf_token` field or the X-CSRF-Token header."""
    browser_session = read_session(request)
    return browser_session.csrf_token if browser_session else None


def csrf_refused() -> AppError:
    return AppError(
        403,
        "csrf_failed",
        "This request did not carry the page's security token.",
        "Reload the page and try again.",
    )


async def enforce_csrf(request: Request, browser_session: BrowserSession) -> None:
    """Refuse a state-changing cookie-authenticated request whose token does not match the session's."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if not sent and content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        field = form.get(CSRF_FORM_FIELD)
        sent = field if isinstance(field, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), browser_session.csrf_token.encode()):
        raise csrf_refused()
