"""$batch building blocks: requests, results, chunking into envelopes of 20 that keep dependsOn together, and
sorting one envelope's answers into final results and items to retry (the client's retry loop sends them again)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from equa.microsoft.graph.errors import GraphError, classify_graph_error
from equa.microsoft.graph.metrics import GRAPH_BATCH_ITEMS
from equa.microsoft.graph.permissions import ScopeSetting
from equa.microsoft.graph.retry import RETRYABLE_STATUSES, parse_retry_after

MAX_BATCH_SIZE = 20
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class BatchRequest:
    """One request inside $batch; `url` is relative to the Graph version root (e.g. /groups/{id}/members)."""

    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] | None = None
    id: str | None = None
    depends_on: Sequence[str] = ()

    @property
    def is_write(self) -> bool:
        return self.method.upper() in WRITE_METHODS


@dataclass
class BatchResult:
    """The answer to one BatchRequest; `error` is set (classified) when the status is not 2xx."""

    id: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    error: GraphError | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def request_id(self) -> str | None:
        return self.headers.get("request-id") or (self.error.request_id if self.error else None)

    def json(self) -> Any:
        return self.body


def assign_ids(requests: Sequence[BatchRequest]) -> list[str]:
    """Each request's id: its own when given, else its position (1-based); duplicates are refused."""
    ids = [r.id if r.id is not None else str(index + 1) for index, r in enumerate(requests)]
    if len(set(ids)) != len(ids):
        raise ValueError("batch request ids must be unique")
    known = set(ids)
    for request in requests:
        missing = [d for d in request.depends_on if d not in known]
        if missing:
            raise ValueError(f"batch request depends on unknown id(s): {', '.join(missing)}")
    return ids


def chunk_indexes(requests: Sequence[BatchRequest], ids: Sequence[str]) -> list[list[int]]:
    """Indexes of the requests per envelope: at most 20 each, in order, never splitting a dependsOn chain."""
    position = {request_id: index for index, request_id in enumerate(ids)}
    parent = list(range(len(requests)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for index, request in enumerate(requests):
        for dependency in request.depends_on:
            a, b = root(index), root(position[dependency])
            if a != b:
                parent[max(a, b)] = min(a, b)

    groups: dict[int, list[int]] = {}
    for index in range(len(requests)):
        groups.setdefault(root(index), []).append(index)

    chunks: list[list[int]] = []
    current: list[int] = []
    for group in sorted(groups.values(), key=lambda g: g[0]):
        if len(group) > MAX_BATCH_SIZE:
            raise ValueError(
                f"a dependsOn chain of {len(group)} requests does not fit in one $batch (max 20)"
            )
        if len(current) + len(group) > MAX_BATCH_SIZE:
            chunks.append(current)
            current = []
        current.extend(group)
    if current:
        chunks.append(current)
    return chunks


def batch_item(request: BatchRequest, request_id: str, pending_ids: set[str], url: str) -> dict[str, Any]:
    """The JSON of one item of an envelope; `url` is the request's URL relative to the Graph version root."""
    item: dict[str, Any] = {"id": request_id, "method": request.method.upper(), "url": url}
    headers = dict(request.headers or {})
    if request.body is not None:
        item["body"] = request.body
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    if headers:
        item["headers"] = headers
    # Dependencies already answered successfully in an earlier round are dropped.
    depends_on = [d for d in request.depends_on if d in pending_ids]
    if depends_on:
        item["dependsOn"] = depends_on
    return item


def batch_result(
    request_id: str,
    status: int,
    headers: dict[str, str],
    item: Mapping[str, Any] | None,
    admin_consent_url: str | None,
    group_scope: ScopeSetting | None = None,
) -> BatchResult:
    body = (item or {}).get("body")
    error: GraphError | None = None
    if status >= 400:
        error = classify_graph_error(
            status,
            body if body is not None else {},
            headers=headers,
            admin_consent_url=admin_consent_url,
            group_scope=group_scope,
        )
    return BatchResult(request_id, status, headers, body, error)


def status_of(item: Mapping[str, Any]) -> int:
    try:
        return int(item.get("status", 0) or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class SortedAnswers:
    """The items of one envelope to send again, and how long the server asked to wait first."""

    retry: list[int]
    longest_retry_after: float | None
    throttled: bool


def sort_answers(
    requests: Sequence[BatchRequest],
    ids: Sequence[str],
    pending: Sequence[int],
    answered: Mapping[str, Mapping[str, Any]],
    results: dict[int, BatchResult],
    admin_consent_url: str | None,
    group_scope: ScopeSetting | None = None,
) -> SortedAnswers:
    """Record every pending item's answer in `results`; those worth sending again (429, 503, 504, unanswered, and
    a 424 whose dependency is sent again) are listed to retry."""
    retry: list[int] = []
    retry_ids: set[str] = set()
    longest: float | None = None
    throttled = False
    failed_dependency: list[int] = []
    for index in pending:
        item = answered.get(ids[index])
        status = int(item.get("status", 0)) if item else 503
        GRAPH_BATCH_ITEMS.labels(str(status)).inc()
        item_headers = {str(k).lower(): str(v) for k, v in ((item or {}).get("headers") or {}).items()}
        if status in RETRYABLE_STATUSES:
            retry.append(index)
            retry_ids.add(ids[index])
            throttled = throttled or status == 429
            after = parse_retry_after(item_headers.get("retry-after"))
            if after is not None:
                longest = after if longest is None else max(longest, after)
            results[index] = batch_result(
                ids[index], status, item_headers, item, admin_consent_url, group_scope
            )
        elif status == 424:
            failed_dependency.append(index)
        else:
            results[index] = batch_result(
                ids[index], status, item_headers, item, admin_consent_url, group_scope
            )
    # A 424 caused by an item we are about to retry is retried with it; otherwise it is final.
    for index in failed_dependency:
        if any(d in retry_ids for d in requests[index].depends_on):
            retry.append(index)
            retry_ids.add(ids[index])
        else:
            item = answered.get(ids[index]) or {}
            item_headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
            results[index] = batch_result(ids[index], 424, item_headers, item, admin_consent_url, group_scope)
    return SortedAnswers(retry, longest, throttled)
