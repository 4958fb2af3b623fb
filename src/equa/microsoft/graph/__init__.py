"""The only code that speaks HTTP to Microsoft: tokens, the Graph client and its error catalogue."""

from equa.microsoft.graph.auth import TokenProvider
from equa.microsoft.graph.batch import BatchRequest, BatchResult
from equa.microsoft.graph.client import GraphClient, GraphResponse, RecordedWrite, build_graph_client
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
    "RecordedWrite",
    "TokenProvider",
    "build_graph_client",
    "classify_graph_error",
]
