"""Fixtures shared by the whole suite: databases, settings, the app and a client, and data factories.

Databases
  database_url      session-scoped, parametrized: "sqlite" (a temp file) and "postgres" (a database created
                    for this test session from EQUA_TEST_DATABASE_URL and dropped at the end; skipped with a
                    reason when that variable is unset). Migrated once with Alembic, exactly as `equa db upgrade`.
                    Every test that uses it (directly or through `app`/`client`) runs once per backend.
  clean_database    function-scoped: empties every table before the test, so tests never see each other's rows.

The Graph emulator
  emu               the one emulator of every suite: graph_emulator.pytest_plugin's HTTPS server (one per test
                    process, no throttling, Graph's replication lag), reset to its seeded tenant before each test
                    (no faults, statistics zeroed). A suite that needs another tenant overrides
                    `graph_emulator_server` (and `emu`) in its conftest under the same names.

Settings
  make_settings(**overrides) -> Settings   a factory: points at `database_url`, a fixed test session key and a
                                           temp data directory; keyword overrides by field name.
  settings                                 make_settings() with no overrides; in a test marked
                                           `retry_budget(NAME)`, the integration on and pointed at `emu`, with the
                                           named budget of RETRY_BUDGETS ("api", "sync", "chaos").
  emulator_settings(budget="api", *, tenant_wide=True, **overrides) -> Settings
                                           the same, for a test that builds its own settings.

Application
  app               create_app(settings) with its lifespan running (engine, session factory); clean tables.
  client            httpx.AsyncClient over ASGITransport to `app`, base_url http://testserver.
  session_factory   app.state.session_factory, for tests that read or seed the database directly.

Time
  clock             a ManualClock: `clock()` reads like time.monotonic, `clock.utcnow()` like equa.db.base.utcnow,
                    and `clock.advance(seconds)` moves both. Pass it to the caches (`ReadCache.clock`,
                    `StatusCache.clock`) or the sync lease (`abandon_stale_runs(clock=clock.utcnow)`): no test sleeps
                    to wait for something to expire.

Data factories (each commits, so the rows are visible to the app at once)
  make_user(email=None, *, password=None, display_name=None, platform_admin=False) -> User
  make_org(admin, *, name=None, members=(), admins=()) -> Organization
  api_token_for(user, name="test") -> str      a fresh API token for Authorization: Bearer
  bearer(user) -> dict[str, str]               headers with a fresh API token

Passwords are hashed with cheap argon2 parameters in tests only; production keeps the library's defaults.

Parallel runs (pytest-xdist, `make test` runs `-n auto --dist loadscope`): every worker has its own session fixtures
(temp SQLite files, throw-away PostgreSQL databases, emulators and servers on random ports). Tests marked `redis`
share Redis database 15, so they take turns (a lock file); `--dist loadscope` keeps each module's tests on one
worker, so module-scoped fixtures are started once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.accounts.passwords import use_password_hasher
from equa.accounts.service import create_user
from equa.accounts.tokens import create_api_token
from equa.app import create_app
from equa.db.base import Base, utcnow
from equa.db.engine import create_engine_for
from equa.db.migrate import upgrade_database_async
from equa.db.models_registry import import_all_models
from equa.organizations.models import Membership, Organization, Role
from equa.settings import Settings
from pg_databases import create_postgres_database, drop_postgres_database

TEST_SECRET_KEY = "test-session-key-" + "k" * 32

use_password_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
import_all_models()


# Under `--dist loadscope`, the browser tests are one unit of work (one worker, one after the other): their served apps
# live for the session, and the sync jobs of an app find it through one per-process slot, which another module's app
# would take over if it started in the same process between two browser modules.
_ONE_UNIT_DIRECTORIES = ("tests/e2e/",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class DirectoryAwareScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for directory in _ONE_UNIT_DIRECTORIES:
                if nodeid.startswith(directory):
                    return directory
            return str(super()._split_scope(nodeid))

    return DirectoryAwareScopeScheduling(config, log)


# One lock file for every test process on this machine: tests marked `redis` use fixed keys in database 15.
_REDIS_TESTS_LOCK = Path(tempfile.gettempdir()) / "equa-tests-redis-db15.lock"


@pytest.fixture(autouse=True)
def _one_redis_test_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked `redis` share database 15 and its keys: under pytest-xdist (or two runs at once) they take turns.

    A lock rather than an xdist group: it holds whatever the scheduler does, and across separate runs too."""
    if request.node.get_closest_marker("redis") is None:
        yield
        return
    with _REDIS_TESTS_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _logging_as_each_test_found_it() -> Iterable[None]:
    """A command run in-process (`equa sync`, `equa demo`) configures the root logger as its process would; put it
    back, so a later test sees a fresh process's logging and not log lines meant for another command's terminal."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest_asyncio.fixture(scope="session", params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'equa.db'}"
        await upgrade_database_async(url)
        yield url
        return
    base_url = os.environ.get("EQUA_TEST_DATABASE_URL")
    if not base_url:
        pytest.skip("PostgreSQL tests need EQUA_TEST_DATABASE_URL (make test sets it when a server answers)")
    url = await create_postgres_database(base_url)
    try:
        await upgrade_database_async(url)
        yield url
    finally:
        await drop_postgres_database(base_url, url)


async def empty_all_tables(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        async with engine.begin() as connection:
            tables = list(reversed(Base.metadata.sorted_tables))
            if connection.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                await connection.execute(text(f"TRUNCATE {names} CASCADE"))
            else:
                for table in tables:
                    await connection.execute(delete(table))
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def clean_database(database_url: str) -> str:
    await empty_all_tables(database_url)
    return database_url


class ManualClock:
    """Time that moves only when a test says so; starts at the real time."""

    def __init__(self) -> None:
        self._monotonic = time.monotonic()
        self._wall = utcnow()
        self.offset = 0.0

    def __call__(self) -> float:
        return self._monotonic + self.offset

    def utcnow(self) -> datetime:
        return self._wall + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "secret_key": TEST_SECRET_KEY,
            "data_dir": tmp_path / "data",
            # Tests sync several times in a row; the pacing of admins' syncs has tests of its own.
            "sync_min_interval_seconds": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def emu(graph_emulator: Any) -> Any:
    """The emulator on its seeded tenant, without faults, statistics zeroed (the plugin resets it)."""
    return graph_emulator


# Graph retry budgets by name: how long a suite lets the app retry Graph before it answers.
RETRY_BUDGETS: dict[str, dict[str, Any]] = {
    # API tests: a request retries a few seconds at most; status summaries are cached for the test.
    "api": {
        "graph_max_attempts": 5,
        "graph_max_retry_wait_seconds": 4.0,
        "graph_timeout_seconds": 10.0,
        "status_cache_seconds": 60.0,
        "sync_requeue_backoff_seconds": 0.2,
    },
    # Sync tests: a run rides out injected faults; no scheduled syncs start behind the test's back. A run an outage
    # queues again waits fractions of a second, not EQUA_SYNC_REQUEUE_BACKOFF's half minute.
    "sync": {
        "graph_max_attempts": 6,
        "graph_max_retry_wait_seconds": 20.0,
        "graph_timeout_seconds": 10.0,
        "sync_interval_seconds": 3600,
        "sync_requeue_backoff_seconds": 0.2,
    },
    # Chaos tests: small budgets, so a run under heavy fault injection takes seconds.
    "chaos": {
        "graph_max_attempts": 6,
        "graph_max_retry_wait_seconds": 6.0,
        "graph_timeout_seconds": 5.0,
        "status_cache_seconds": 1.0,
        "sync_interval_seconds": 3600,
        "sync_requeue_backoff_seconds": 0.2,
    },
}


def _integration_values(emulator: Any, budget: str, *, tenant_wide: bool) -> dict[str, Any]:
    """MS_GROUP_SCOPE=tenant (tenant_wide) lets tests link any seeded group; the scope tests use `granted`."""
    if budget not in RETRY_BUDGETS:
        raise ValueError(f"unknown retry budget {budget!r}: one of {sorted(RETRY_BUDGETS)}")
    return {
        "ms_group_scope": "tenant" if tenant_wide else "granted",
        "ms_auth_enabled": True,
        "ms_auth_client_id": emulator.client_id,
        "ms_auth_tenant_id": emulator.tenant_id,
        "ms_auth_secret": emulator.client_secret,
        "ms_authority_host": emulator.base_url,
        "ms_graph_url": emulator.graph_url,
        "ms_ca_bundle": emulator.ca_path,
        **RETRY_BUDGETS[budget],
    }


@pytest.fixture
def emulator_settings(make_settings: Callable[..., Settings], emu: Any) -> Callable[..., Settings]:
    def factory(budget: str = "api", *, tenant_wide: bool = True, **overrides: Any) -> Settings:
        return make_settings(**{**_integration_values(emu, budget, tenant_wide=tenant_wide), **overrides})

    return factory


@pytest.fixture
def settings(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    marker = request.node.get_closest_marker("retry_budget")
    if marker is None:
        return make_settings()
    factory: Callable[..., Settings] = request.getfixturevalue("emulator_settings")
    return factory(*marker.args, **marker.kwargs)


@pytest_asyncio.fixture
async def app(settings: Settings, clean_database: str) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def session_factory(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    return factory


@pytest.fixture
def make_user(session_factory: async_sessionmaker[AsyncSession]) -> Callable[..., Awaitable[User]]:
    async def factory(
        email: str | None = None,
        *,
        password: str | None = None,
        display_name: str | None = None,
        platform_admin: bool = False,
    ) -> User:
        async with session_factory() as session:
            user = await create_user(
                session,
                email or f"user-{uuid.uuid4().hex[:8]}@example.com",
                display_name,
                password,
                is_platform_admin=platform_admin,
            )
            await session.commit()
            return user

    return factory


@pytest.fixture
def make_org(session_factory: async_sessionmaker[AsyncSession]) -> Callable[..., Awaitable[Organization]]:
    async def factory(
        admin: User, *, name: str | None = None, members: Iterable[User] = (), admins: Iterable[User] = ()
    ) -> Organization:
        async with session_factory() as session:
            organization = Organization(name=name or f"Org {uuid.uuid4().hex[:6]}")
            session.add(organization)
            await session.flush()
            session.add(Membership(organization_id=organization.id, user_id=admin.id, role=Role.ADMIN))
            for extra_admin in admins:
                session.add(
                    Membership(organization_id=organization.id, user_id=extra_admin.id, role=Role.ADMIN)
                )
            for member in members:
                session.add(Membership(organization_id=organization.id, user_id=member.id, role=Role.MEMBER))
            await session.commit()
            return organization

    return factory


@pytest.fixture
def api_token_for(session_factory: async_sessionmaker[AsyncSession]) -> Callable[..., Awaitable[str]]:
    async def factory(user: User, name: str = "test") -> str:
        async with session_factory() as session:
            _, token = await create_api_token(session, user, name)
            await session.commit()
            return token

    return factory


@pytest.fixture
def bearer(api_token_for: Callable[..., Awaitable[str]]) -> Callable[[User], Awaitable[dict[str, str]]]:
    async def factory(user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {await api_token_for(user)}"}

    return factory
