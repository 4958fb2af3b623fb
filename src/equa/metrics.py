"""Prometheus metrics of the service itself: HTTP requests by route template, and sync runs and flagged members.

Graph metrics live beside the Graph client (equa.microsoft.graph.metrics); everything is in the default registry
and served by /metrics (equa.metrics_routes). Labels are bounded: route templates, methods, status codes and run
results, never a URL, an address, an organization id or anything secret.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "unmatched"

HTTP_REQUESTS = Counter(
    "equa_http_requests",
    "HTTP requests answered, by route template ('unmatched' when no route matched), method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "equa_http_request_duration_seconds",
    "Time from receiving an HTTP request to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

SYNC_RESULTS = ("succeeded", "partial", "failed", "abandoned", "cancelled", "requeued")
SYNC_RUNS = Counter(
    "equa_sync_runs",
    "Sync runs finished in this process, by result (succeeded, partial, failed, abandoned, cancelled; requeued: a try that "
    "met a Microsoft 365 outage and queued the run again).",
    ["result"],
)
SYNC_RUN_SECONDS = Histogram(
    "equa_sync_run_duration_seconds",
    "Wall-clock time of finished sync runs in this process, from start to final state, by result.",
    ["result"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
SYNC_MEMBERS_FLAGGED = Counter(
    "equa_sync_members_flagged",
    "Group members that a sync run found in the Microsoft 365 group without a matching Equa team member.",
)

# Read from the database when /metrics is scraped, so they are right whichever process ran the syncs.
FLAGGED_MEMBERS = Gauge(
    "equa_flagged_members",
    "Flagged group members across all organizations, by status (pending, invited, dismissed).",
    ["status"],
)
SYNC_RUNS_ACTIVE = Gauge(
    "equa_sync_runs_active",
    "Sync runs currently queued or running across all organizations, by status.",
    ["status"],
)
METRICS_DATABASE_UP = Gauge(
    "equa_metrics_database_up",
    "1 when the last scrape could read the database-backed gauges, 0 when the database did not answer.",
)


def record_sync_run(result: str, duration_seconds: float, flagged_members: int = 0) -> None:
    """Count one finished sync run: call it once, where the run reaches its final state.

    `result` is the run's final status; anything else is counted as "failed" so the label set stays bounded.
    `flagged_members` is how many group members this run newly flagged.
    """
    label = result if result in SYNC_RESULTS else "failed"
    SYNC_RUNS.labels(result=label).inc()
    SYNC_RUN_SECONDS.labels(result=label).observe(max(duration_seconds, 0.0))
    if flagged_members > 0:
        SYNC_MEMBERS_FLAGGED.inc(flagged_members)


def route_template(scope: Scope) -> str:
    """The matched route's path template (e.g. /api/v1/organizations/{org_id}), or 'unmatched'."""
    route: Any = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return UNMATCHED_ROUTE
    if isinstance(route, Mount):
        # A mounted app (static files) answers a whole subtree: one label for all of it.
        return f"{template}/{{path}}"
    return template or "/"


class HttpMetricsMiddleware:
    """Counts every HTTP request and times it, labelled by route template so cardinality stays bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception escaping the app becomes a 500 in the outermost error middleware.
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = route_template(scope)
            method = _bounded_method(scope.get("method", ""))
            HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(route=route, method=method).observe(time.perf_counter() - started)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _bounded_method(method: str) -> str:
    # Clients can send any token as a method; do not let them mint label values.
    return method if method in _KNOWN_METHODS else "OTHER"
