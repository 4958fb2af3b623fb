"""API tokens: generated once, stored as SHA-256, looked up by hash."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from equa.accounts.models import ApiToken, User
from equa.db.base import utcnow
from equa.db.read_cache import ReadCache, detached_copy, read_through
from equa.errors import not_found

log = logging.getLogger("equa.accounts.tokens")

TOKEN_PREFIX = "equa_"
DISPLAY_PREFIX_LENGTH = 12
# Recording every use would turn each API read into a write; once a minute is enough to answer "is it used?".
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_expires_at(token: ApiToken, max_age: timedelta | None) -> datetime | None:
    """When the token stops working under EQUA_API_TOKEN_MAX_AGE_DAYS (None: never).

    Derived from the creation time rather than stored, so changing the setting applies to existing tokens too.
    """
    return None if max_age is None else token.created_at + max_age


async def create_api_token(session: AsyncSession, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the token, which is never retrievable again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id, name=name, token_hash=hash_token(token), prefix=token[:DISPLAY_PREFIX_LENGTH]
    )
    session.add(row)
    await session.flush()
    return row, token


TOKEN_TABLES = (ApiToken.__tablename__, User.__tablename__)


async def user_for_api_token(
    session: AsyncSession, token: str, cache: ReadCache | None = None, max_age: timedelta | None = None
) -> User | None:
    """The active user owning an unrevoked, unexpired token, or None.

    `cache` may answer for a request that writes nothing; `max_age` is EQUA_API_TOKEN_MAX_AGE_DAYS.
    """
    token_hash = hash_token(token)
    now = utcnow()

    async def load() -> tuple[ApiToken, User] | None:
        result = await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )
        found = result.first()
        return None if found is None else (found[0], found[1])

    async def attach(copies: tuple[ApiToken, User]) -> tuple[ApiToken, User]:
        return await session.merge(copies[0], load=False), await session.merge(copies[1], load=False)

    found = await read_through(
        cache,
        ("api_token", token_hash),
        TOKEN_TABLES,
        load,
        lambda row: (detached_copy(row[0]), detached_copy(row[1])),
        attach,
    )
    if found is None:
        return None
    api_token, user = found
    if not user.is_active:
        return None
    expires_at = token_expires_at(api_token, max_age)
    if expires_at is not None and expires_at <= now:
        return None
    if _use_due(api_token, now):
        if session.new or session.dirty or session.deleted:
            return user  # never commit someone else's pending work; the use is recorded next time
        # Hand the request's connection back before the write takes one: a request holding one connection while
        # waiting for a second would, with many first uses at once, exhaust the pool and wait on itself.
        await session.commit()
        await _record_use(session, api_token, now)
    return user


def _use_due(api_token: ApiToken, now: datetime) -> bool:
    return api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION


async def _record_use(session: AsyncSession, api_token: ApiToken, when: datetime) -> None:
    """Write last_used_at in a short transaction of its own, best effort.

    Left to the request's transaction, the change would be flushed by the request's first query and, on SQLite,
    hold the database's only write lock for the whole request (Microsoft Graph calls and their retries included),
    failing every other writer after the busy timeout.
    """
    try:
        async with AsyncSession(session.bind) as own:
            await own.execute(update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=when))
            await own.commit()
    except SQLAlchemyError as error:
        log.warning("could not record the use of API token %s: %s", api_token.prefix, type(error).__name__)
        return
    set_committed_value(api_token, "last_used_at", when)


async def list_api_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    result = await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at, ApiToken.id)
    )
    return list(result)


async def revoke_api_token(session: AsyncSession, user: User, token_id: uuid.UUID) -> ApiToken:
    """Revoke one of the user's tokens; another user's token is reported as missing."""
    row = await session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))
    if row is None:
        raise not_found("API token")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


async def revoke_api_token_by_id(session: AsyncSession, token_id: uuid.UUID) -> tuple[ApiToken, bool]:
    """An operator revokes any token; returns it and whether this call revoked it (False: it already was)."""
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise not_found("API token")
    if row.revoked_at is not None:
        return row, False
    row.revoked_at = utcnow()
    await session.flush()
    return row, True


async def revoke_all_api_tokens(session: AsyncSession, user: User) -> int:
    """Revoke every live token of `user`; returns how many."""
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)
