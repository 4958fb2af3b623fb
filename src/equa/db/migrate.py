"""Running Alembic migrations and checking whether a database is at the latest revision."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from equa.db.engine import create_engine_for

log = logging.getLogger("equa.db.migrate")

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


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config("")).get_revision(revision) is not None
    except Exception:  # alembic raises for a revision id it has never seen
        return False


async def migration_problem(database_url: str) -> str | None:
    """None when this version can run on the database, else one line saying what to run.

    A database migrated by a newer version is accepted with a warning: migrations within a minor version only add
    (tables, nullable columns, indexes), so the processes of the previous version keep working during a rolling
    upgrade, and one of them restarting mid-upgrade is not locked out (docs/operations.md).
    """
    current = await current_revisions(database_url)
    heads = head_revisions()
    if current == heads:
        return None
    if not current:
        return "The database has no tables yet. Run `equa db upgrade` first."
    newer = {revision for revision in current if not _known(revision)}
    if newer:
        log.warning(
            "the database is at revision %s, newer than this version of equa knows (%s): running on it, as "
            "migrations within a minor version are additive; upgrade this process soon",
            ", ".join(sorted(newer)),
            ", ".join(sorted(heads)),
        )
        return None
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
    (current_revision,) = current
    revision = script.get_revision(current_revision) if _known(current_revision) else None
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
