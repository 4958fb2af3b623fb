"""Running Alembic migrations and checking whether a database is at the latest revision."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from equa.db.engine import create_engine_for

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    # Kept out of the ini file on purpose: '%' in passwords would break ini interpolation.
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`. Synchronous: call it from a thread when an event loop runs."""
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_database_async(database_url: str, revision: str = "head") -> None:
    """`upgrade_database` from async code: Alembic's env runs its own event loop, so it needs a thread."""
    await asyncio.to_thread(upgrade_database, database_url, revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("")).get_heads())


def _current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def current_revisions(database_url: str) -> set[str]:
    engine = create_engine_for(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_revisions)
    finally:
        await engine.dispose()


async def migration_problem(database_url: str) -> str | None:
    """None when the database is at the latest revision, else one line saying what to run."""
    current = await current_revisions(database_url)
    heads = head_revisions()
    if current == heads:
        return None
    if not current:
        return "The database has no tables yet. Run `equa db upgrade` first."
    if current - heads and not (heads - current):
        return "The database was migrated by a newer version of equa; upgrade equa before serving."
    return "The database schema is out of date. Run `equa db upgrade` first."


def check_migrated(database_url: str) -> str | None:
    return asyncio.run(migration_problem(database_url))


class MigrationRefused(ValueError):
    """A downgrade that cannot be done, with one line saying why."""


def previous_revision(current: set[str]) -> str:
    """The revision one step below the database's current one ("base" below the first migration)."""
    if not current:
        raise MigrationRefused("The database has no tables; there is nothing to downgrade.")
    if len(current) > 1:
        raise MigrationRefused(
            f"The database is at several heads ({', '.join(sorted(current))}); name the target revision."
        )
    script = ScriptDirectory.from_config(alembic_config(""))
    revision = script.get_revision(next(iter(current)))
    if revision is None:
        raise MigrationRefused(
            "The database was migrated by a newer version of equa; downgrade with that version."
        )
    down = revision.down_revision
    if down is None:
        return "base"
    if not isinstance(down, str):
        raise MigrationRefused("The current revision merges several; name the target revision.")
    return down


def downgrade_database(database_url: str, revision: str | None = None) -> str:
    """Undo migrations down to `revision` (default: the previous one); returns the revision reached."""
    target = revision or previous_revision(asyncio.run(current_revisions(database_url)))
    command.downgrade(alembic_config(database_url), target)
    return target
