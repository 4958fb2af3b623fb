"""Request-scoped wiring of the database layer: the request's session and whether it may use the read cache.

db/ knows nothing of HTTP; this is where a request meets it (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.db.read_cache import ReadCache

SAFE_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit once if the handler succeeded, roll back otherwise."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function" closes the dependency before the response is sent, so a failed commit becomes an error
# response instead of a success the client already received.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


def read_cache_for(request: Request) -> ReadCache | None:
    """The app's cache when this request may use it (it changes nothing), else None."""
    if request.method not in SAFE_METHODS:
        return None
    cache: ReadCache | None = getattr(request.app.state, "read_cache", None)
    return cache if cache is not None and cache.enabled else None
