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


def test_migration_0004_records_groups_created_before_it_as_created_for_their_organization(
    tmp_path: Path,
) -> None:
    """Upgrading keeps create-group's groups linkable by their organization in the `granted` scope."""
    import sqlite3
    import uuid

    from alembic import command

    from equa.db.migrate import alembic_config

    path = tmp_path / "upgrade.db"
    config = alembic_config(f"sqlite+aiosqlite:///{path}")
    command.upgrade(config, "0003")
    org, creation, group = uuid.uuid4(), uuid.uuid4(), "ABCDEF00-0000-4000-8000-000000000001"
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO organizations (id, name, created_at, microsoft_auto_sync, microsoft_remove_departed) "
            "VALUES (?, 'Before', '2026-11-30 10:00:00.000000', 0, 0)",
            (org.hex,),
        )
        db.execute(
            "INSERT INTO microsoft_group_creations (id, organization_id, idempotency_key, mail_nickname, group_id, "
            "created_at) VALUES (?, ?, 'implicit:before', 'before', ?, '2026-11-30 10:00:00.000000')",
            (creation.hex, org.hex, group),
        )
        db.execute(  # an attempt that never made a group is not a grant
            "INSERT INTO microsoft_group_creations (id, organization_id, idempotency_key, mail_nickname, created_at) "
            "VALUES (?, ?, 'implicit:failed', 'failed', '2026-11-30 11:00:00.000000')",
            (uuid.uuid4().hex, org.hex),
        )
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT organization_id, group_id, origin, creation_id FROM microsoft_group_grants"
        ).fetchall()
    assert rows == [(org.hex, group.lower(), "created", creation.hex)]
