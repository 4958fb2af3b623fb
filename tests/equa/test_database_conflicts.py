"""A conflict between concurrent transactions reaches the caller as a 503 to retry, never as a 500."""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from equa.db.engine import create_engine_for
from equa.errors import install_error_handlers, is_transient_database_conflict


async def _provoke_deadlock(url: str) -> DBAPIError:
    """Two transactions that each hold a row the other one wants: PostgreSQL aborts one of them."""
    engine = create_engine_for(url)
    try:
        table = f"deadlock_probe_{uuid.uuid4().hex[:12]}"  # the shared test database may serve other runs
        async with engine.begin() as setup:
            await setup.execute(text(f"DROP TABLE IF EXISTS {table}"))
            await setup.execute(text(f"CREATE TABLE {table} (id int primary key, v int)"))
            await setup.execute(text(f"INSERT INTO {table} VALUES (1, 0), (2, 0)"))
        first_locked, second_locked = asyncio.Event(), asyncio.Event()

        async def transaction(mine: int, theirs: int, locked: asyncio.Event, other: asyncio.Event) -> None:
            async with engine.begin() as connection:
                await connection.execute(text(f"UPDATE {table} SET v = v + 1 WHERE id = {mine}"))
                locked.set()
                await other.wait()
                await connection.execute(text(f"UPDATE {table} SET v = v + 1 WHERE id = {theirs}"))

        results = await asyncio.gather(
            transaction(1, 2, first_locked, second_locked),
            transaction(2, 1, second_locked, first_locked),
            return_exceptions=True,
        )
        async with engine.begin() as cleanup:
            await cleanup.execute(text(f"DROP TABLE {table}"))
    finally:
        await engine.dispose()
    errors = [r for r in results if isinstance(r, DBAPIError)]
    assert len(errors) == 1, results
    return errors[0]


async def test_a_postgresql_deadlock_is_recognised_as_a_conflict_to_retry() -> None:
    url = os.environ.get("EQUA_TEST_DATABASE_URL")
    if not url:
        pytest.skip("EQUA_TEST_DATABASE_URL is not set (make test sets it when PostgreSQL answers)")
    error = await _provoke_deadlock(url)
    assert is_transient_database_conflict(error)

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/collide")
    async def collide() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/collide")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["code"] == "database_busy" and body["action"]
    assert "deadlock" not in response.text.lower()


def test_other_database_errors_are_not_mistaken_for_conflicts() -> None:
    unique = DBAPIError("INSERT ...", {}, Exception("duplicate key value violates unique constraint"))
    assert not is_transient_database_conflict(unique)
    locked = DBAPIError("UPDATE ...", {}, Exception("database is locked"))
    assert is_transient_database_conflict(locked)
