"""The per-request database session: one AsyncSession, one commit at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


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
