"""JSON batching: up to 20 requests, unique ids, dependsOn with 424, per-item throttling, shuffled answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import GraphError
from .router import GraphRequest, GraphResponse

if TYPE_CHECKING:
    from .runtime import Emulator

MAX_BATCH = 20
INVALID_PAYLOAD = "Invalid batch payload format."


def _batch_error(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _key(request_id: Any) -> str:
    """Batch request ids compare case-insensitively, as Microsoft's JSON batching page says."""
    return str(request_id).casefold()


def _validate(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise _batch_error(INVALID_PAYLOAD)
    items = body["requests"]
    if len(items) > MAX_BATCH:
        raise _batch_error(f"The batch request exceeds the maximum of {MAX_BATCH} requests.")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict) or not item.get("id") or not item.get("method") or not item.get("url"):
            raise _batch_error(INVALID_PAYLOAD)
        item_id = str(item["id"])
        if _key(item_id) in seen:
            raise _batch_error(f"Request id {item_id} is not unique in the batch.")
        seen.add(_key(item_id))
        headers = {str(k).lower(): v for k, v in (item.get("headers") or {}).items()}
        if "body" in item and item["body"] is not None and "content-type" not in headers:
            raise _batch_error(f"Write request id : {item_id} does not contain Content-Type header or body.")
    for item in items:
        for dependency in item.get("dependsOn") or []:
            if _key(dependency) not in seen or _key(dependency) == _key(item["id"]):
                raise _batch_error(INVALID_PAYLOAD)
    return items


def _sub_request(outer: GraphRequest, item: dict[str, Any], request_id: str) -> GraphRequest | GraphError:
    url = str(item["url"])
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return GraphError(400, "BadRequest", "Batch request URLs must be relative.")
    path = unquote(parts.path)
    if not path.startswith("/"):
        path = "/" + path
    if path.startswith("/v1.0/"):
        path = path[len("/v1.0") :]
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    return GraphRequest(
        method=str(item["method"]).upper(),
        path=path,
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=item.get("body"),
        tenant=outer.tenant,
        app=outer.app,
        roles=outer.roles,
        request_id=request_id,
        client_request_id=headers.get("client-request-id") or outer.client_request_id,
        graph_base=outer.graph_base,
        raw_query=parts.query,
    )


def _item(item_id: str, response: GraphResponse) -> dict[str, Any]:
    headers = {"Cache-Control": "no-cache", **response.headers}
    return {"id": item_id, "status": response.status, "headers": headers, "body": response.body}


def run_batch(emu: Emulator, outer: GraphRequest, new_request_id: Any) -> GraphResponse:
    items = _validate(outer.body)
    emu.stats.batch_subrequests += len(items)
    results: dict[str, GraphResponse] = {}
    pending = list(items)
    # Items run in dependency order; an item whose dependency failed is not run and answers 424.
    while pending:
        progressed = False
        for item in list(pending):
            depends = [_key(d) for d in item.get("dependsOn") or []]
            if any(d not in results for d in depends):
                continue
            pending.remove(item)
            progressed = True
            item_id = _key(item["id"])
            request_id = new_request_id()
            if any(results[d].status >= 400 for d in depends):
                failed = GraphError(424, "FailedDependency", "The request depends on a request that failed.")
                results[item_id] = emu.error((request_id, outer.client_request_id), failed)
                continue
            sub = _sub_request(outer, item, request_id)
            if isinstance(sub, GraphError):
                results[item_id] = emu.error((request_id, outer.client_request_id), sub)
                continue
            injected = emu.batch_item_faults.take(sub.method, sub.path)
            if injected is not None:
                emu.stats.fault(f"batch_item_{injected.status}")
                results[item_id] = emu.error((request_id, outer.client_request_id), injected)
                continue
            response = emu.execute(sub)
            if response.status == 429:
                # A throttled item carries its own Retry-After, as Graph does.
                response.headers.setdefault("Retry-After", "1")
            results[item_id] = response
        if not progressed:
            raise _batch_error(INVALID_PAYLOAD)  # a dependency cycle
    order = [str(item["id"]) for item in items]
    emu.shuffle.shuffle(order)
    return GraphResponse(200, {"responses": [_item(i, results[_key(i)]) for i in order]})
