"""The per-request database session: one AsyncSession, one commit at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, UOWTransaction

# Set in Session.info once a flush has sent writes to the database: from then on, ending the transaction early
# would commit half a unit of work.
_WROTE = "equa.wrote"


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


@event.listens_for(Session, "after_flush")
def _remember_flushed_writes(session: Session, _flush_context: UOWTransaction) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_flushed_writes(session: Session) -> None:
    session.info.pop(_WROTE, None)


async def release_connection(session: AsyncSession) -> None:
    """End a read-only transaction so its pooled connection goes back before a long wait (a Graph call).

    A request that holds its connection while Graph answers keeps it for 50 ms to seconds; a few dozen such
    requests exhaust the pool and every other request, even one that only reads a row, queues behind them.
    Only read-only work is ended here (committing it changes nothing); a session with pending or flushed writes
    keeps its transaction, because those writes must commit together with the rest of the request.
    """
    if not session.in_transaction() or session.info.get(_WROTE):
        return
    if session.new or session.dirty or session.deleted:
        return
    await session.commit()
