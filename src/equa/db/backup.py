"""`equa db backup PATH`: a consistent copy of the database while the service runs.

SQLite: the online backup API copies the database page by page under its own read transaction, so writers keep
going and the copy is consistent (copying the file could catch a half-written WAL). PostgreSQL: pg_dump in its
custom format, restorable with pg_restore (docs/operations.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from equa.db.engine import is_sqlite

OPERATIONS_DOC = "docs/operations.md"


class BackupError(RuntimeError):
    """A backup that could not be made, with one line saying what to do."""


def backup_database(database_url: str, destination: Path) -> str:
    """Write a backup of the database to `destination` (which must not exist); returns what was done."""
    if destination.exists():
        raise BackupError(
            f"{destination} already exists; choose a new file name (backups are never overwritten)"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    if is_sqlite(database_url):
        return _backup_sqlite(database_url, destination)
    return _backup_postgresql(database_url, destination)


def _backup_sqlite(database_url: str, destination: Path) -> str:
    database = make_url(database_url).database
    if not database or database == ":memory:" or not Path(database).is_file():
        raise BackupError(f"there is no SQLite database file at {database}; run `equa db upgrade` first")
    partial = destination.with_name(destination.name + ".partial")
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    partial.replace(destination)  # a crash mid-copy leaves no file that looks like a complete backup
    return f"SQLite backup of {database} written to {destination} (restore: stop equa, copy it back)"


def _backup_postgresql(database_url: str, destination: Path) -> str:
    url = make_url(database_url)
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError(
            "pg_dump is not installed here: install the PostgreSQL client tools of the server's major version, "
            f"or run pg_dump where they are (see {OPERATIONS_DOC}, Backup and restore)"
        )
    # Connection details go through libpq's environment, so the password never shows in a process list.
    env = {**os.environ}
    for name, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[name] = str(value)
    partial = destination.with_name(destination.name + ".partial")
    result = subprocess.run(
        [pg_dump, "--format=custom", "--no-owner", f"--file={partial}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise BackupError(f"pg_dump failed: {reason} (see {OPERATIONS_DOC}, Backup and restore)")
    partial.replace(destination)
    return (
        f"PostgreSQL backup of database {url.database} written to {destination} "
        "(restore: pg_restore --clean --if-exists --no-owner -d DATABASE FILE)"
    )
