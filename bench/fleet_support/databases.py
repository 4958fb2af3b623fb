"""The bench's database: a SQLite file, or a throw-away PostgreSQL database on the server of an admin URL."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path


async def _admin_execute(admin_url: str, statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str | None, directory: Path) -> AsyncIterator[str]:
    """Yields the URL of an empty database, dropped (PostgreSQL) or left in `directory` (SQLite) afterwards."""
    if not admin_url:
        yield f"sqlite+aiosqlite:///{directory / 'fleet.db'}"
        return
    from sqlalchemy.engine import make_url

    name = f"fleet_bench_{uuid.uuid4().hex[:12]}"
    await _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
