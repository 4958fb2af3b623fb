"""Start-up of the Microsoft integration: one shared Graph client per process, closed at shut-down."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from equa.settings import Settings


async def open_graph_client(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    app.state.graph = None
    if not settings.ms_auth_enabled:
        return
    from equa.microsoft.graph import build_graph_client
    from equa.microsoft.scope import log_scope_at_start_up

    log_scope_at_start_up(settings)

    # Building the client does no network I/O: MSAL is constructed lazily on the first token request,
    # so the service starts even while Microsoft is unreachable and reports it through status/health.
    graph = build_graph_client(settings)
    stack.push_async_callback(graph.aclose)
    app.state.graph = graph
