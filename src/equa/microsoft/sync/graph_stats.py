"""What one sync run cost in Microsoft Graph traffic: HTTP requests, $batch sub-requests, 429 answers, retries.

The Graph client is shared by every run of a process, and its Prometheus counters add all of them up. A run's own
numbers come from a response hook on the client's HTTP connection pool that adds to whichever run's counter is in
the current context (a context variable, inherited by the tasks a run starts). Token requests go to another client
and are not counted, like the lower bound in issue 6 does not count them.
"""

from __future__ import annotations

import contextvars
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from equa.microsoft.graph import GraphClient

log = logging.getLogger("equa.microsoft.sync.graph_stats")

RETRYABLE = {429, 503, 504}
_HOOKED = "_equa_run_stats_hooked"


@dataclass
class RunGraphStats:
    requests: int = 0  # HTTP requests to Graph, retries included
    batch_subrequests: int = 0  # run by Graph (those of an envelope refused as a whole are not)
    throttled: int = 0  # 429 answers, to a request or to a $batch sub-request
    retries: int = 0  # requests sent again, and $batch sub-requests answered 429/503/504 (sent again)
    _seen: set[str] = field(default_factory=set, repr=False)

    def as_json(self) -> dict[str, int]:
        values = asdict(self)
        values.pop("_seen")
        return {
            "requests": values["requests"],
            "batchSubrequests": values["batch_subrequests"],
            "throttled": values["throttled"],
            "retries": values["retries"],
        }


_current: contextvars.ContextVar[RunGraphStats | None] = contextvars.ContextVar(
    "equa_sync_graph_stats", default=None
)


def start_counting() -> RunGraphStats:
    """Count the Graph traffic of this task (and of the tasks it starts from now on) into a new RunGraphStats."""
    stats = RunGraphStats()
    _current.set(stats)
    return stats


def current() -> RunGraphStats | None:
    return _current.get()


def install(graph: GraphClient) -> None:
    """Attach the counting hook to the client's connection pool, once."""
    # The client offers no per-caller statistics; its httpx pool accepts event hooks, which only observe.
    http = getattr(graph, "_http", None)
    if not isinstance(http, httpx.AsyncClient) or getattr(http, _HOOKED, False):
        return
    hooks = http.event_hooks
    hooks.setdefault("response", []).append(_on_response)
    http.event_hooks = hooks
    setattr(http, _HOOKED, True)


async def _on_response(response: httpx.Response) -> None:
    stats = _current.get()
    if stats is None:
        return
    stats.requests += 1
    request_id = response.request.headers.get("client-request-id")
    if request_id:
        if request_id in stats._seen:
            stats.retries += 1
        else:
            stats._seen.add(request_id)
    if response.status_code == 429:
        stats.throttled += 1
    if not response.request.url.path.endswith("/$batch"):
        return
    if response.status_code >= 400:
        return  # the envelope itself was refused: its sub-requests were not run, and are sent again
    try:
        sent = json.loads(response.request.content or b"{}")
        stats.batch_subrequests += len(sent.get("requests", []))
        await response.aread()
        answered: list[dict[str, Any]] = (response.json() or {}).get("responses", [])
    except (ValueError, AttributeError, httpx.HTTPError):
        return
    for item in answered:
        status = int(item.get("status", 0) or 0)
        if status == 429:
            stats.throttled += 1
        if status in RETRYABLE:
            stats.retries += 1
