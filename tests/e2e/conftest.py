"""Browser tests: the app served by uvicorn on a free port (SQLite) with the Graph emulator behind it, driven by
Debian's chromium through Playwright.

Fixtures
  graph_emulator_server  the session's emulator (graph_emulator.pytest_plugin, default seed), reset before every
                         test by `web`, which hands it to the test as `web.emulator`.
  web                 function-scoped: a clean database and emulator, and a WebWorld with the base URLs of two
                      servers (Microsoft 365 enabled / disabled; a third in the `granted` group scope, the
                      others tenant-wide), factories for users and organizations, and
                      `page(...)` to open a fresh browser context.
Helpers for the tests themselves are in web_support.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import expect
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from web_support import WebWorld

from equa.app import create_app
from equa.db.base import Base
from equa.db.engine import create_engine_for, create_session_factory
from equa.db.migrate import upgrade_database_async
from equa.db.models_registry import import_all_models
from equa.settings import Settings
from graph_emulator.testing import RunningEmulator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET_KEY = "e2e-session-key-" + "s" * 32

import_all_models()

# Assertions wait for what a user would wait for: on two cores shared with the rest of the suite (pytest-xdist), a
# page can take longer than Playwright's default 5 s to show an answer that the server gives in milliseconds alone.
expect.set_options(timeout=15_000)


class _ThreadServer(uvicorn.Server):
    """uvicorn on a background thread: no signal handlers (they belong to the main thread)."""

    def install_signal_handlers(self) -> None:
        return None


@dataclass
class ServedApp:
    base_url: str
    server: _ThreadServer
    thread: threading.Thread

    def forget_graph_writes(self) -> None:
        """The emulator is reset between tests; the app's memory of its own recent writes must go with it."""
        graph = getattr(self.server.config.app.state, "graph", None)
        if graph is not None:
            graph.own_writes.clear()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(settings: Settings, port: int | None = None) -> ServedApp:
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
    )
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            return ServedApp(f"http://127.0.0.1:{port}", server, thread)
        if not thread.is_alive():
            break
        threading.Event().wait(0.025)
    server.should_exit = True
    raise RuntimeError("the app did not start for the browser tests")


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip("Browser tests need Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    return CHROMIUM


@pytest_asyncio.fixture(scope="session")
async def web_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('web-db') / 'equa.db'}"
    await upgrade_database_async(url)
    return url


def _settings(
    database_url: str, data_dir: Path, emulator: RunningEmulator | None, group_scope: str = "tenant"
) -> Settings:
    # No status cache: one server serves every test while the emulator is reset between them.
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SECRET_KEY,
        "data_dir": data_dir,
        "status_cache_seconds": 0,
        # "Sync now" is clicked several times in a row; the pacing of admins' syncs has API tests of its own.
        "sync_min_interval_seconds": 0,
    }
    if emulator is not None:
        values.update(
            ms_auth_enabled=True,
            ms_auth_client_id=emulator.client_id,
            ms_auth_tenant_id=emulator.tenant_id,
            ms_auth_secret=emulator.client_secret,
            ms_authority_host=emulator.base_url,
            ms_graph_url=emulator.graph_url,
            ms_ca_bundle=emulator.ca_path,
            # The older browser tests link any seeded group; test_web_scope serves its own app in `granted` mode.
            ms_group_scope=group_scope,
        )
    return Settings(**values)


@pytest.fixture(scope="session")
def served_apps(
    chromium_path: Path,
    web_database_url: str,
    graph_emulator_server: RunningEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, ServedApp]]:
    data_dir = tmp_path_factory.mktemp("web-data")
    # Each app runs its syncs with its own settings (its app.state.jobs).
    granted = serve(_settings(web_database_url, data_dir, graph_emulator_server, group_scope="granted"))
    apps = {
        "granted": granted,
        "enabled": serve(_settings(web_database_url, data_dir, graph_emulator_server)),
        "disabled": serve(_settings(web_database_url, data_dir, None)),
    }
    try:
        yield apps
    finally:
        for served in apps.values():
            served.stop()


@pytest.fixture(scope="session")
def multi_tenant_app(
    chromium_path: Path,
    web_database_url: str,
    graph_emulator_server: RunningEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServedApp]:
    """The app in multi-tenant mode (MS_AUTH_TENANT_ID=organizations), its public address its own."""
    port = free_port()
    settings = _settings(web_database_url, tmp_path_factory.mktemp("web-multi"), graph_emulator_server)
    values = settings.model_dump(exclude_unset=True)
    values.update(ms_auth_tenant_id="organizations", public_url=f"http://127.0.0.1:{port}")
    values.pop("ms_group_scope", None)  # each organization's own tenant
    served = serve(Settings(**values), port)
    try:
        yield served
    finally:
        served.stop()


@pytest_asyncio.fixture(scope="session")
async def browser(chromium_path: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(scope="session")
async def web_engine(web_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for(web_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _empty_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(delete(table))


@pytest_asyncio.fixture
async def web(
    served_apps: dict[str, ServedApp],
    graph_emulator_server: RunningEmulator,
    web_engine: AsyncEngine,
    browser: Any,
) -> AsyncIterator[WebWorld]:
    await _empty_tables(web_engine)
    await asyncio.to_thread(graph_emulator_server.reset)
    for served in served_apps.values():
        served.forget_graph_writes()
    world = WebWorld(
        url=served_apps["enabled"].base_url,
        url_disabled=served_apps["disabled"].base_url,
        url_granted=served_apps["granted"].base_url,
        emulator=graph_emulator_server,
        sessions=create_session_factory(web_engine),
        browser=browser,
    )
    try:
        yield world
    finally:
        for context in world.contexts:
            await context.close()
