"""Throw-away PostgreSQL databases for tests: created on the server of an admin URL, dropped when done."""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy.engine import URL, make_url


async def _admin_execute(url: URL, statement: str) -> None:
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_postgres_database(base_url: str, prefix: str = "equa_test") -> str:
    """A new, empty database on the server of `base_url` (an admin connection URL); returns its URL."""
    url = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin_execute(url, f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(base_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    await _admin_execute(make_url(base_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
