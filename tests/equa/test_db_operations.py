"""`equa db downgrade` and `equa db backup` as an operator runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from equa.db.engine import create_engine_for
from equa.db.migrate import head_revisions, previous_revision
from pg_databases import create_postgres_database, drop_postgres_database

EQUA = str(Path(sys.executable).with_name("equa"))


class Database:
    """One throw-away database and the `equa` command pointed at it."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir

    def equa(self, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_", "EQUA_"))}
        env |= {
            "EQUA_DATABASE_URL": url or self.url,
            "EQUA_DATA_DIR": str(self.data_dir),
            "EQUA_SECRET_KEY": "db-ops-test-" + "k" * 30,
        }
        return subprocess.run([EQUA, *args], capture_output=True, text=True, timeout=120, env=env)

    def ok(self, *args: str, url: str | None = None) -> str:
        result = self.equa(*args, url=url)
        assert result.returncode == 0, result.stderr
        return result.stdout


def _postgres_base() -> str:
    base = os.environ.get("EQUA_TEST_DATABASE_URL")
    if not base:
        pytest.skip("EQUA_TEST_DATABASE_URL is not set (PostgreSQL tests)")
    return base


def _new_postgres(created: list[str]) -> str:
    url = asyncio.run(create_postgres_database(_postgres_base(), "equa_dbops"))
    created.append(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def databases(backend: str, tmp_path: Path) -> Iterator[list[str]]:
    """PostgreSQL databases made by the test, dropped at the end."""
    created: list[str] = []
    yield created
    for url in created:
        asyncio.run(drop_postgres_database(_postgres_base(), url))


@pytest.fixture
def database(backend: str, databases: list[str], tmp_path: Path) -> Database:
    if backend == "sqlite":
        return Database(f"sqlite+aiosqlite:///{tmp_path / 'equa.db'}", tmp_path / "data")
    return Database(_new_postgres(databases), tmp_path / "data")


def tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine_for(url)
        try:
            async with engine.connect() as connection:
                return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(read())


def current_revision(url: str) -> str:
    async def read() -> str:
        engine = create_engine_for(url)
        try:
            async with engine.connect() as connection:
                return str(
                    (await connection.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_downgrade_rolls_back_one_migration_at_a_time_and_keeps_the_data(database: Database) -> None:
    database.ok("db", "upgrade")
    (head,) = head_revisions()
    previous = previous_revision({head})
    database.ok("users", "create", "ann@example.com")

    # Without a revision: one step back, to the revision before the head.
    assert database.ok("db", "downgrade").strip() == f"Database is at revision {previous}."
    assert current_revision(database.url) == previous
    # The current version refuses the older schema and says what to run; the data is untouched.
    refused = database.equa("tokens", "create", "ann@example.com")
    assert refused.returncode == 1 and "equa db upgrade" in refused.stderr
    assert database.ok("db", "upgrade").strip() == "Database is at revision head."
    assert database.ok("tokens", "create", "ann@example.com").startswith("equa_")

    # A named revision: 0003 added the browser sessions table, so going to 0002 drops it and keeps the users.
    assert database.ok("db", "downgrade", "0002").strip() == "Database is at revision 0002."
    assert "browser_sessions" not in tables(database.url) and "users" in tables(database.url)
    assert database.ok("db", "downgrade", "base").strip() == "Database is at revision base."
    assert not tables(database.url) - {"alembic_version"}
    nothing = database.equa("db", "downgrade")
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == "error: The database has no tables; there is nothing to downgrade."


def test_backup_is_restorable_and_never_overwrites(
    backend: str, database: Database, databases: list[str], tmp_path: Path
) -> None:
    database.ok("db", "upgrade")
    database.ok("users", "create", "ann@example.com")
    token = database.ok("tokens", "create", "ann@example.com", "--name", "kept").strip()

    backup = tmp_path / "backups" / "equa.backup"
    said = database.ok("db", "backup", str(backup))
    assert str(backup) in said and "EQUA_SECRET_KEY" in said
    assert backup.is_file() and not backup.with_name("equa.backup.partial").exists()
    assert token not in backup.read_bytes().decode("latin-1")  # tokens are stored as hashes only

    again = database.equa("db", "backup", str(backup))
    assert again.returncode == 1 and "already exists" in again.stderr

    # Later changes are not in the backup; restoring brings back the state at backup time.
    database.ok("users", "create", "later@example.com")
    if backend == "sqlite":
        restored_file = tmp_path / "restored.db"
        shutil.copy(backup, restored_file)
        restored = f"sqlite+aiosqlite:///{restored_file}"
    else:
        restored = _new_postgres(databases)
        target = make_url(restored)
        env = {**os.environ, "PGHOST": str(target.host), "PGPORT": str(target.port or 5432)}
        env |= {"PGUSER": str(target.username)} | ({"PGPASSWORD": target.password} if target.password else {})
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", "-d", str(target.database), str(backup)],
            check=True,
            env=env,
            capture_output=True,
        )
    listed = database.ok("tokens", "list", "ann@example.com", url=restored)
    assert "kept" in listed and token[:12] in listed
    missing = database.equa("tokens", "list", "later@example.com", url=restored)
    assert missing.returncode == 1
    assert database.ok("db", "upgrade", url=restored).strip() == "Database is at revision head."


def test_backup_of_a_database_that_does_not_exist_says_what_to_do(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'none.db'}", tmp_path / "data")
    result = database.equa("db", "backup", str(tmp_path / "b.db"))
    assert result.returncode == 1
    assert "no SQLite database file" in result.stderr and "equa db upgrade" in result.stderr


def test_the_pool_size_setting_sizes_every_process_engine(
    backend: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from equa.db.engine import create_engine_for_settings
    from equa.settings import load_settings

    monkeypatch.setenv("EQUA_DB_POOL_SIZE", "3")
    monkeypatch.setenv("EQUA_DATABASE_URL", database.url)
    engine = create_engine_for_settings(load_settings())
    try:
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        asyncio.run(engine.dispose())
    monkeypatch.setenv("EQUA_DB_POOL_SIZE", "0")
    from equa.settings import SettingsError

    with pytest.raises(SettingsError, match="EQUA_DB_POOL_SIZE"):
        load_settings()
