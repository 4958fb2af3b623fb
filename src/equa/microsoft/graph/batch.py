"""$batch building blocks: requests, results, and chunking into envelopes of 20 that keep dependsOn together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from equa.microsoft.graph.errors import GraphError

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
