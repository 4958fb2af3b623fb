"""Browser sessions: a signed cookie naming a server-side session row, and the CSRF token that goes with each.

The signature keeps forged cookies out without a database read; the row lets signing out (or an operator) end a
session for good, even if its cookie was copied before.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import BrowserSessionRecord, User
from equa.db.base import utcnow
from equa.db.read_cache import ReadCache, detached_copy, read_through
from equa.errors import AppError
from equa.settings import Settings

SESSION_COOKIE = "equa_session"
SESSION_MAX_AGE_SECONDS = 14 * 24 * 3600
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class BrowserSession:
    session_id: uuid.UUID
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
        browser_session = BrowserSession(
            session_id=uuid.UUID(data["s"]), user_id=uuid.UUID(data["u"]), csrf_token=str(data["c"])
        )
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    request.scope["equa.browser_session"] = browser_session
    return browser_session


async def start_session(request: Request, response: Response, user: User, db: AsyncSession) -> str:
    """Sign `user` in on this browser; returns the CSRF token that state-changing requests must echo."""
    now = utcnow()
    # The person's ended sessions are of no more use: tidy them here, so the table stays the size of who is signed in.
    await db.execute(
        delete(BrowserSessionRecord).where(
            BrowserSessionRecord.user_id == user.id,
            or_(BrowserSessionRecord.revoked_at.is_not(None), BrowserSessionRecord.expires_at <= now),
        )
    )
    record = BrowserSessionRecord(
        user_id=user.id, expires_at=now + timedelta(seconds=SESSION_MAX_AGE_SECONDS)
    )
    db.add(record)
    await db.flush()
    csrf_token = secrets.token_urlsafe(32)
    value = _serializer(_settings(request)).dumps({"s": str(record.id), "u": str(user.id), "c": csrf_token})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=_settings(request).cookies_secure(request.url.scheme),
        path="/",
    )
    request.scope["equa.browser_session"] = BrowserSession(
        session_id=record.id, user_id=user.id, csrf_token=csrf_token
    )
    return csrf_token


async def end_session(request: Request, response: Response, db: AsyncSession) -> None:
    """Sign this browser out: the session row is revoked, so the cookie is refused even where it was copied."""
    browser_session = read_session(request)
    if browser_session is not None:
        await db.execute(
            update(BrowserSessionRecord)
            .where(
                BrowserSessionRecord.id == browser_session.session_id,
                BrowserSessionRecord.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_settings(request).cookies_secure(request.url.scheme),
    )
    request.scope.pop("equa.browser_session", None)


async def end_all_sessions(db: AsyncSession, user: User) -> int:
    """Sign `user` out of every browser (a lost laptop, a left employee); returns how many sessions ended."""
    result = await db.execute(
        update(BrowserSessionRecord)
        .where(
            BrowserSessionRecord.user_id == user.id,
            BrowserSessionRecord.revoked_at.is_(None),
            BrowserSessionRecord.expires_at > utcnow(),
        )
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


SESSION_TABLES = (BrowserSessionRecord.__tablename__, User.__tablename__)


async def session_user(
    db: AsyncSession, browser_session: BrowserSession, cache: ReadCache | None = None
) -> User | None:
    """The active user of an unrevoked, unexpired session row, or None. `cache` may answer for a read-only request."""

    async def load() -> User | None:
        return await db.scalar(
            select(User)
            .join(BrowserSessionRecord, BrowserSessionRecord.user_id == User.id)
            .where(
                BrowserSessionRecord.id == browser_session.session_id,
                BrowserSessionRecord.user_id == browser_session.user_id,
                BrowserSessionRecord.revoked_at.is_(None),
                BrowserSessionRecord.expires_at > utcnow(),
                User.is_active.is_(True),
            )
        )

    async def attach(copy: User) -> User:
        return await db.merge(copy, load=False)

    return await read_through(
        cache, ("browser_session", browser_session.session_id), SESSION_TABLES, load, detached_copy, attach
    )


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
