"""The FastAPI application factory: routers, error handlers, and the lifespan that owns shared resources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI

import equa
from equa.accounts.passwords import set_hash_concurrency
from equa.body_limit import BodySizeLimitMiddleware
from equa.db.engine import create_engine_for_settings, create_session_factory
from equa.db.read_cache import ReadCache
from equa.errors import install_error_handlers
from equa.metrics import HttpMetricsMiddleware
from equa.microsoft.problems import install_graph_error_handler
from equa.settings import Settings, load_settings

# A resource hook runs at start-up with the app and the lifespan's exit stack: create the resource, keep it on
# app.state, and register its clean-up on the stack (stack.push_async_callback(client.aclose)).
LifespanHook = Callable[[FastAPI, AsyncExitStack], Awaitable[None]]


class DatabaseNotMigrated(RuntimeError):
    """The database is missing tables or is behind the code's migrations."""


def routers(settings: Settings | None = None) -> list[APIRouter]:
    """Every router of the service. Add a package's router here, one line each."""
    from equa.accounts.routes import router as accounts_router
    from equa.health import router as health_router
    from equa.metrics_routes import router as metrics_router
    from equa.organizations.routes import invitation_router
    from equa.organizations.routes import router as organizations_router
    from equa.web.routes import router as web_router

    return [
        health_router,
        metrics_router,
        accounts_router,
        organizations_router,
        invitation_router,
        web_router,
        *microsoft_routers(settings),
    ]


def microsoft_routers(settings: Settings | None) -> list[APIRouter]:
    """The Microsoft 365 API exists only when MS_AUTH_ENABLED is true (absent from /openapi.json otherwise)."""
    if settings is None or not settings.ms_auth_enabled:
        return []
    from equa.microsoft.grant_routes import router as grants_router
    from equa.microsoft.restore_routes import router as restore_router
    from equa.microsoft.routes import microsoft_routers as routers_of_microsoft
    from equa.microsoft.sync.routes import router as sync_router
    from equa.microsoft.tenants.routes import router as tenants_router

    return [*routers_of_microsoft(), restore_router, sync_router, grants_router, tenants_router]


def lifespan_hooks() -> list[LifespanHook]:
    """Start-up resources beyond the database (Graph client, task broker...), in start order."""
    from equa.accounts.throttle import open_sign_in_throttle
    from equa.microsoft.lifespan import open_graph_client
    from equa.microsoft.tasks import start_jobs

    return [open_sign_in_throttle, open_graph_client, start_jobs]


async def _open_database(app: FastAPI, stack: AsyncExitStack) -> None:
    from equa.db.migrate import migration_problem

    settings: Settings = app.state.settings
    url = settings.resolved_database_url
    problem = await migration_problem(url)
    if problem is not None:
        raise DatabaseNotMigrated(problem)
    engine = create_engine_for_settings(settings)
    stack.push_async_callback(engine.dispose)
    app.state.engine = engine
    app.state.session_factory = create_session_factory(engine)
    # The read cache learns of this process's writes only while the app runs (no hook is installed at import).
    stack.callback(app.state.read_cache.watch_sessions())


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        await _open_database(app, stack)
        for hook in lifespan_hooks():
            await hook(app, stack)
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        title="Equa Microsoft 365 integration",
        version=equa.__version__,
        lifespan=_lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    set_hash_concurrency(settings.password_hash_concurrency)
    app.state.read_cache = ReadCache(settings.effective_read_cache_seconds)
    # Added first, so it runs inside the metrics middleware and refused bodies are counted too.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetricsMiddleware)
    install_error_handlers(app)
    install_graph_error_handler(app)
    for router in routers(settings):
        app.include_router(router)
    return app
