"""Request dependencies that identify the caller: API token or browser session."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPBearer

from equa.accounts.models import User
from equa.accounts.platform_admins import is_platform_admin, platform_admin_required
from equa.accounts.sessions import SESSION_COOKIE, enforce_csrf, read_session, session_user
from equa.accounts.tokens import user_for_api_token
from equa.deps import DbSession, read_cache_for
from equa.errors import AppError

# Declared so OpenAPI documents both ways to authenticate; the header is parsed below, strictly.
_bearer_scheme = HTTPBearer(auto_error=False, description="An API token from POST /api/v1/me/tokens")
_cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Browser session")


def not_signed_in(message: str = "Sign in or send an API token.") -> AppError:
    return AppError(
        401,
        "not_authenticated",
        message,
        "Send `Authorization: Bearer <token>` or sign in again.",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def current_user(
    request: Request,
    session: DbSession,
    _bearer: Annotated[object, Depends(_bearer_scheme)] = None,
    _cookie: Annotated[object, Depends(_cookie_scheme)] = None,
) -> User:
    """The signed-in user. Bearer requests skip CSRF (a browser never adds that header by itself)."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise not_signed_in("The Authorization header must be `Bearer <token>`.")
        settings = request.app.state.settings
        user = await user_for_api_token(session, token, read_cache_for(request), settings.api_token_max_age)
        if user is None:
            raise not_signed_in("The API token is not valid, was revoked or has expired.")
        request.state.auth_method = "token"
        return user

    browser_session = read_session(request)
    if browser_session is None:
        raise not_signed_in()
    user = await session_user(session, browser_session, read_cache_for(request))
    if user is None:
        raise not_signed_in("Your session has ended; sign in again.")
    await enforce_csrf(request, browser_session)
    request.state.auth_method = "session"
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def require_platform_admin(request: Request, user: CurrentUser) -> User:
    """The signed-in user, if they operate this installation; 403 for everyone else."""
    if not is_platform_admin(user, request.app.state.settings):
        raise platform_admin_required()
    return user


PlatformAdmin = Annotated[User, Depends(require_platform_admin)]
