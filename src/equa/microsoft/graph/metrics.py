"""Prometheus metrics of the Graph edge (default registry); labels are route templates, never raw URLs."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Histogram

GRAPH_REQUESTS = Counter(
    "equa_graph_requests",
    "HTTP requests sent to Microsoft Graph, by method, route template and status (or 'error').",
    ["method", "route", "status"],
)
GRAPH_REQUEST_SECONDS = Histogram(
    "equa_graph_request_duration_seconds",
    "Time from sending a Graph request to its answer.",
    ["method", "route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GRAPH_RETRIES = Counter(
    "equa_graph_retries",
    "Graph requests sent again, by reason (throttled, unavailable, network, token_refresh).",
    ["reason"],
)
GRAPH_THROTTLED_WAITS = Counter(
    "equa_graph_throttled_waits",
    "Times a caller waited at the throttle gate because the tenant was throttled.",
)
GRAPH_THROTTLED_WAIT_SECONDS = Counter(
    "equa_graph_throttled_wait_seconds",
    "Seconds callers spent waiting at the throttle gate.",
)
GRAPH_RESOURCE_UNITS = Counter(
    "equa_graph_resource_units",
    "Resource units Graph charged (x-ms-resource-unit), by method and route template.",
    ["method", "route"],
)
GRAPH_TOKEN_ACQUISITIONS = Counter(
    "equa_graph_token_acquisitions",
    "Access tokens requested from the Microsoft identity platform, by outcome.",
    ["outcome"],
)
GRAPH_BATCH_ITEMS = Counter(
    "equa_graph_batch_items",
    "Requests sent inside $batch, by status.",
    ["status"],
)
GRAPH_DRY_RUN_WRITES = Counter(
    "equa_graph_dry_run_writes",
    "Writes recorded and not sent because dry-run mode is on.",
    ["method", "route"],
)
GRAPH_PACING_WAITS = Counter(
    "equa_graph_pacing_waits",
    "Times a request waited for its tenant's write or resource-unit budget before being sent.",
)
GRAPH_PACING_WAIT_SECONDS = Counter(
    "equa_graph_pacing_wait_seconds",
    "Seconds requests spent waiting for their tenant's write or resource-unit budget.",
)


def count_resource_units(headers: Mapping[str, str], method: str, route: str) -> None:
    """Add the resource units Graph charged for one answer (x-ms-resource-unit) to its route's counter."""
    value = headers.get("x-ms-resource-unit")
    if value is None:
        return
    try:
        units = float(value)
    except ValueError:
        return
    if units > 0:
        GRAPH_RESOURCE_UNITS.labels(method, route).inc(units)
