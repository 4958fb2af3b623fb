"""Session bookkeeping: which sessions have flushed writes, and ending a read-only transaction early.

The request's own session (one AsyncSession, one commit at the end) is wired in equa/deps.py."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

# Set in Session.info once a flush has sent writes to the database: from then on, ending the transaction early
# would commit half a unit of work.
_WROTE = "equa.wrote"


def install_write_tracking(session_class: type[Session]) -> None:
    """Make the sessions of `session_class` remember whether they have flushed writes (for release_connection).

    Called for each session factory's own Session class (db/engine.py), so only those sessions are hooked.
    """
    event.listen(session_class, "after_flush", _remember_flushed_writes)
    event.listen(session_class, "after_commit", _forget_flushed_writes)
    event.listen(session_class, "after_rollback", _forget_flushed_writes)


def _remember_flushed_writes(session: Session, _flush_context: UOWTransaction) -> None:
    session.info[_WROTE] = True


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
