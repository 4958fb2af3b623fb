"""Building Graph collection pages: projection, @odata.count, @odata.nextLink with an opaque skiptoken."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from .odata import QueryOptions, encode_skiptoken
from .router import GraphRequest, GraphResponse

JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)


def next_link(req: GraphRequest, token: dict[str, Any]) -> str:
    parts = [
        f"{quote(key, safe='$')}={quote(value, safe=',$()=:/@')}"
        for key, value in req.query.items()
        if key != "$skiptoken"
    ]
    parts.append(f"$skiptoken={encode_skiptoken(token)}")
    return f"{req.graph_base}{req.path}?{'&'.join(parts)}"


def page(
    req: GraphRequest,
    opts: QueryOptions,
    items: Sequence[Any],
    render: Callable[[Any], dict[str, Any]],
    context: str,
) -> GraphResponse:
    """Offset paging over an already filtered and ordered sequence."""
    offset = int((opts.skiptoken or {}).get("o", 0))
    chunk = items[offset : offset + opts.top]
    body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#{context}"}
    if opts.count and opts.skiptoken is None:
        body["@odata.count"] = len(items)
    if offset + opts.top < len(items):
        body["@odata.nextLink"] = next_link(req, {"o": offset + opts.top})
    body["value"] = [render(item) for item in chunk]
    return GraphResponse(200, body)


def entity(req: GraphRequest, context: str, obj: dict[str, Any]) -> GraphResponse:
    return GraphResponse(200, {"@odata.context": f"{req.graph_base}/$metadata#{context}", **obj})
