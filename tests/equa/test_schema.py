"""Migrations and models describe the same schema; the app refuses an un-migrated database."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import Connection

from equa.app import DatabaseNotMigrated, create_app
from equa.db.base import Base
from equa.db.engine import create_engine_for
from equa.db.migrate import head_revisions, migration_problem
from equa.db.models_registry import import_all_models
from equa.settings import Settings


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    import_all_models()
    engine = create_engine_for(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_migrated_database_is_at_head(database_url: str) -> None:
    assert await migration_problem(database_url) is None
    assert head_revisions()


async def test_app_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    app = create_app(Settings(database_url=url, secret_key="k" * 40, data_dir=tmp_path))
    with pytest.raises(DatabaseNotMigrated, match="equa db upgrade"):
        async with LifespanManager(app):
            pass
