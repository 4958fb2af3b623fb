"""Async engine creation with the connection settings each backend needs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from equa.db.session import install_write_tracking

if TYPE_CHECKING:
    from equa.settings import Settings

# SQLite has one writer at a time; the others wait this long for it. A sync run's last transaction (its outcomes,
# up to a few thousand rows) can hold the lock for seconds on a busy machine, and a short bookkeeping write that
# gives up then loses its work to a lease: waiting longer is the better failure. The wait happens in the
# connection's thread, never on the event loop.
SQLITE_BUSY_TIMEOUT_MS = 20_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while one writer commits; busy_timeout makes concurrent writers wait
    # instead of failing at once; SQLite enforces foreign keys only when asked, per connection.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_engine_for(url: str, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for an SQLAlchemy URL (sqlite+aiosqlite or postgresql+asyncpg)."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            from pathlib import Path

            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def create_engine_for_settings(settings: Settings) -> AsyncEngine:
    """The engine of a serving, worker or scheduler process: the configured database and pool size."""
    # EQUA_DB_POOL_SIZE connections stay open; SQLAlchemy's default overflow (10) absorbs bursts above it.
    url = settings.resolved_database_url
    if is_sqlite(url) and make_url(url).database in (None, "", ":memory:"):
        return create_engine_for(url)  # one shared in-memory connection: no pool to size
    return create_engine_for(url, pool_size=settings.db_pool_size)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # A Session class of this factory's own: the hooks installed on it (write tracking here, the task broker's
    # after-commit enqueue) reach this factory's sessions only, and importing a module hooks nothing.
    session_class = type("FactorySession", (Session,), {})
    install_write_tracking(session_class)
    # expire_on_commit=False: objects stay readable after the request's single commit.
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=True, sync_session_class=session_class
    )


def session_class_of(factory: async_sessionmaker[AsyncSession]) -> type[Session]:
    """The Session class whose events belong to `factory`'s sessions (see create_session_factory)."""
    session_class: type[Session] | None = factory.kw.get("sync_session_class")
    if session_class is None or session_class is Session:
        # Hooking the base class would hook every session of the process.
        raise ValueError("the session factory was not made by create_session_factory")
    return session_class
