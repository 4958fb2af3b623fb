"""The per-process read cache: GET requests reuse the caller's token and membership for a moment, yet a revoked
token or a demoted admin is refused on the very next request, and a change made elsewhere shows within the TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from equa.accounts.models import ApiToken, User
from equa.db.read_cache import ReadCache, read_through
from equa.organizations.models import Membership, Organization
from equa.settings import Settings


@pytest.fixture(autouse=True)
def cache_on(app: FastAPI) -> None:
    """On whatever the database (PostgreSQL deployments leave it off unless EQUA_READ_CACHE_SECONDS is set)."""
    app.state.read_cache.ttl_seconds = 2.0


def test_the_default_lifetime_follows_the_deployment_shape(make_settings: Callable[..., Settings]) -> None:
    sqlite = make_settings(database_url="sqlite+aiosqlite:///x.db")
    postgres = make_settings(database_url="postgresql+asyncpg://u@db/equa")
    assert sqlite.effective_read_cache_seconds == 2.0
    assert postgres.effective_read_cache_seconds == 0.0
    assert (
        make_settings(
            database_url="postgresql+asyncpg://u@db/equa", read_cache_seconds=1.5
        ).effective_read_cache_seconds
        == 1.5
    )
    assert make_settings(read_cache_seconds=0).effective_read_cache_seconds == 0.0


@pytest.fixture
def statements(app: FastAPI) -> Iterator[list[str]]:
    """Every SQL statement the app sends, in order."""
    seen: list[str] = []
    engine: AsyncEngine = app.state.engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


def selects_from(statements: list[str], table: str) -> int:
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s)


async def change_behind_the_orm(app: FastAPI, statement: Any) -> None:
    """Write the way another process would: no ORM session of this process sees it."""
    engine: AsyncEngine = app.state.engine
    async with engine.begin() as connection:
        await connection.execute(statement)


@dataclass
class SignedInAdmin:
    user: User
    org: Organization
    headers: dict[str, str]


@pytest.fixture
async def admin(
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> SignedInAdmin:
    """An organization's admin with an API token whose first use (a write) is already recorded."""
    user = await make_user()
    org = await make_org(user)
    headers = await bearer(user)
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    return SignedInAdmin(user, org, headers)


async def test_repeated_reads_do_not_query_the_token_or_membership_again(
    client: httpx.AsyncClient, admin: SignedInAdmin, statements: list[str]
) -> None:
    org, headers = admin.org, admin.headers
    statements.clear()
    for _ in range(5):
        response = await client.get(f"/api/v1/organizations/{org.id}", headers=headers)
        assert response.status_code == 200, response.text
    assert selects_from(statements, "api_tokens") == 1
    assert selects_from(statements, "organizations JOIN memberships") == 1


async def test_revoked_token_is_refused_on_the_next_request(
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    user = await make_user()
    doomed = await bearer(user)
    other = await bearer(user)
    assert (await client.get("/api/v1/me", headers=doomed)).status_code == 200
    tokens = (await client.get("/api/v1/me/tokens", headers=other)).json()
    doomed_prefix = doomed["Authorization"].removeprefix("Bearer ")[:12]
    doomed_id = next(t["id"] for t in tokens if t["prefix"] == doomed_prefix)
    assert (await client.delete(f"/api/v1/me/tokens/{doomed_id}", headers=other)).status_code == 204

    refused = await client.get("/api/v1/me", headers=doomed)
    assert refused.status_code == 401
    assert refused.json()["code"] == "not_authenticated"


async def test_demoted_admin_loses_admin_reads_on_the_next_request(
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    admin, second = await make_user(), await make_user()
    org = await make_org(admin, admins=[second])
    second_headers = await bearer(second)
    before = await client.get(f"/api/v1/organizations/{org.id}/members", headers=second_headers)
    assert before.status_code == 200

    demoted = await client.patch(
        f"/api/v1/organizations/{org.id}/members/{second.id}",
        json={"role": "member"},
        headers=await bearer(admin),
    )
    assert demoted.status_code == 200, demoted.text
    refused = await client.post(
        f"/api/v1/organizations/{org.id}/members",
        json={"email": "someone@example.com", "role": "member"},
        headers=second_headers,
    )
    assert refused.status_code == 403
    listed = await client.get(f"/api/v1/organizations/{org.id}", headers=second_headers)
    assert listed.json()["role"] == "member"

    removed = await client.delete(
        f"/api/v1/organizations/{org.id}/members/{second.id}", headers=await bearer(admin)
    )
    assert removed.status_code == 204
    gone = await client.get(f"/api/v1/organizations/{org.id}", headers=second_headers)
    assert gone.status_code == 404


async def test_a_change_made_by_another_process_shows_within_the_lifetime(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
    clock: Any,
) -> None:
    app.state.read_cache.ttl_seconds = 1.0
    app.state.read_cache.clock = clock
    user = await make_user()
    headers = await bearer(user)
    for _ in range(2):  # the first records the token's first use (a write), the second is cached
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 200

    await change_behind_the_orm(
        app, update(ApiToken).where(ApiToken.user_id == user.id).values(revoked_at=_now())
    )
    # Within the lifetime this process may still answer from what it read (the documented bound)...
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    clock.advance(1.1)
    # ...and never after it.
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_with_the_cache_off_every_request_reads_the_database(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    app.state.read_cache.ttl_seconds = 0.0
    user = await make_user()
    headers = await bearer(user)
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    await change_behind_the_orm(app, update(User).where(User.id == user.id).values(is_active=False))
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_writes_never_use_what_a_read_cached(
    app: FastAPI, client: httpx.AsyncClient, admin: SignedInAdmin
) -> None:
    org, headers = admin.org, admin.headers
    assert (await client.get(f"/api/v1/organizations/{org.id}", headers=headers)).status_code == 200
    # Demoted by "another process": reads may lag for the lifetime, a write must not.
    await change_behind_the_orm(
        app,
        update(Membership)
        .where(Membership.organization_id == org.id, Membership.user_id == admin.user.id)
        .values(role="member"),
    )
    refused = await client.post(
        f"/api/v1/organizations/{org.id}/members",
        json={"email": "x@example.com", "role": "member"},
        headers=headers,
    )
    assert refused.status_code == 403


async def test_concurrent_misses_share_one_read(
    app: FastAPI, client: httpx.AsyncClient, admin: SignedInAdmin, statements: list[str]
) -> None:
    org, headers = admin.org, admin.headers
    app.state.read_cache.clear()
    statements.clear()
    started = time.monotonic()
    answers = await asyncio.gather(
        *(client.get(f"/api/v1/organizations/{org.id}", headers=headers) for _ in range(20))
    )
    assert all(a.status_code == 200 for a in answers)
    assert time.monotonic() - started < 10
    assert selects_from(statements, "api_tokens") == 1
    assert selects_from(statements, "organizations JOIN memberships") == 1


def _now() -> Any:
    from equa.db.base import utcnow

    return utcnow()


async def _shared_fill(change_during_fill: bool) -> tuple[str, str, int]:
    """Two misses of one key: the second arrives while the first is reading. Returns both answers and the number
    of reads the second made."""
    cache = ReadCache(10.0)
    release = asyncio.Event()
    second_reads = 0

    async def slow_read() -> str:
        await release.wait()
        return "read before the change"

    async def second_read() -> str:
        nonlocal second_reads
        second_reads += 1
        return "read after the change"

    async def same(value: str) -> str:
        return value

    stop_watching = cache.watch_sessions()  # as the app's lifespan does
    try:
        first = asyncio.create_task(read_through(cache, "k", ["api_tokens"], slow_read, str, same))
        await asyncio.sleep(0)  # the first read is in progress
        if change_during_fill:
            await change_tables_in_this_process()
        second = asyncio.create_task(read_through(cache, "k", ["api_tokens"], second_read, str, same))
        await asyncio.sleep(0)
        release.set()
        return await first, await second, second_reads
    finally:
        stop_watching()


async def change_tables_in_this_process() -> None:
    """An ORM change to api_tokens, committed (the generations of the table move on)."""
    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as connection:
        await connection.run_sync(ApiToken.__table__.create)  # type: ignore[attr-defined]
    async with AsyncSession(engine) as session:
        await session.execute(update(ApiToken).values(name="renamed"))
        await session.commit()
    await engine.dispose()


async def test_a_miss_waiting_on_a_read_in_progress_shares_its_answer() -> None:
    first, second, reads = await _shared_fill(change_during_fill=False)
    assert first == second == "read before the change" and reads == 0


async def test_a_miss_never_shares_a_read_that_began_before_a_change() -> None:
    first, second, reads = await _shared_fill(change_during_fill=True)
    assert first == "read before the change"
    assert second == "read after the change" and reads == 1  # e.g. a token revoked meanwhile is refused
