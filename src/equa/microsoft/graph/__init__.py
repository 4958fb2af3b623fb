"""The only code that speaks HTTP to Microsoft: tokens, the Graph client, its error catalogue, pacing and usage."""

from equa.microsoft.graph.auth import TokenProvider
from equa.microsoft.graph.batch import BatchRequest, BatchResult
from equa.microsoft.graph.client import GraphClient, build_graph_client
from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.errors import (
    GraphAlreadyExists,
    GraphAuthenticationFailed,
    GraphError,
    GraphGuestBlocked,
    GraphInvalidRequest,
    GraphNotFound,
    GraphPermissionDenied,
    GraphThrottled,
    GraphTransient,
    GraphUnmanageable,
    classify_graph_error,
)
from equa.microsoft.graph.replication import while_replicating
from equa.microsoft.graph.responses import GraphResponse, RecordedWrite
from equa.microsoft.graph.usage import GraphUsage, measure_usage

__all__ = [
    "BatchRequest",
    "BatchResult",
    "GraphAlreadyExists",
    "GraphAuthenticationFailed",
    "GraphClient",
    "GraphConfig",
    "GraphError",
    "GraphGuestBlocked",
    "GraphInvalidRequest",
    "GraphNotFound",
    "GraphPermissionDenied",
    "GraphResponse",
    "GraphThrottled",
    "GraphTransient",
    "GraphUnmanageable",
    "GraphUsage",
    "RecordedWrite",
    "TokenProvider",
    "build_graph_client",
    "classify_graph_error",
    "measure_usage",
    "while_replicating",
]
