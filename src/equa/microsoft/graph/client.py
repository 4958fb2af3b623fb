"""GraphClient: requests to Microsoft Graph with one retry policy, a throttle gate, paging, $batch and dry-run."""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from equa.microsoft.graph.auth import TokenProvider
from equa.microsoft.graph.batch import (
    WRITE_METHODS,
    BatchRequest,
    BatchResult,
    assign_ids,
    chunk_indexes,
)
from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.errors import (
    GraphError,
    GraphGuestBlocked,
    GraphThrottled,
    GraphTransient,
    GraphUnmanageable,
    classify_graph_error,
)
from equa.microsoft.graph.metrics import (
    GRAPH_BATCH_ITEMS,
    GRAPH_DRY_RUN_WRITES,
    GRAPH_REQUEST_SECONDS,
    GRAPH_REQUESTS,
    GRAPH_RESOURCE_UNITS,
    GRAPH_RETRIES,
)
from equa.microsoft.graph.pacing import (
    FREE,
    RequestCost,
    RequestPacer,
    build_request_pacer,
    request_cost,
)
from equa.microsoft.graph.permissions import feature_of
from equa.microsoft.graph.retry import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    is_safe_to_repeat,
    may_have_reached_graph,
    parse_retry_after,
    should_retry_network_error,
)
from equa.microsoft.graph.routes import route_template
from equa.microsoft.graph.throttle import ThrottleGate, build_throttle_gate
from equa.microsoft.graph.usage import count_batch_answers, count_request, count_retries

if TYPE_CHECKING:
    from equa.settings import Settings

log = logging.getLogger("equa.microsoft.graph.client")


@dataclass(frozen=True)
class GraphResponse:
    """A successful Graph answer (or, in dry-run, the echo of a write that was not sent)."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    request_id: str | None = None
    client_request_id: str | None = None
    dry_run: bool = False

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content) if self.content.strip() else None


@dataclass(frozen=True)
class RecordedWrite:
    """A write that dry-run mode kept instead of sending."""

    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class GraphClient:
    """The one way to call Graph. Use as `async with` or call `aclose()`."""

    def __init__(
        self,
        config: GraphConfig,
        tokens: TokenProvider,
        *,
        gate: ThrottleGate | None = None,
        pacer: RequestPacer | None = None,
        http: httpx.AsyncClient | None = None,
        policy: RetryPolicy | None = None,
        dry_run: bool | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._gate: ThrottleGate = gate or build_throttle_gate(None, config.max_in_flight)
        self._pacer = pacer or build_request_pacer(
            None, writes=config.write_budget, resource_units=config.resource_unit_budget
        )
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            verify=config.ssl_context(),
            timeout=httpx.Timeout(config.timeout_seconds),
            limits=httpx.Limits(
                max_connections=max(10, config.max_in_flight * 2),
                max_keepalive_connections=max(10, config.max_in_flight * 2),
            ),
            headers={"User-Agent": "equa-microsoft"},
            follow_redirects=False,
        )
        self._policy = policy or RetryPolicy(
            max_attempts=config.max_attempts, max_total_wait=config.max_retry_wait_seconds
        )
        self.dry_run = config.dry_run if dry_run is None else dry_run
        self.recorded_writes: list[RecordedWrite] = []
        self._rng = rng

    def __repr__(self) -> str:
        return f"GraphClient(graph_url={self._config.graph_url!r}, tenant={self.tenant!r}, dry_run={self.dry_run})"

    @property
    def tenant(self) -> str:
        return self._config.tenant_id

    @property
    def tokens(self) -> TokenProvider:
        return self._tokens

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
        await self._gate.aclose()
        await self._pacer.aclose()
        await asyncio.to_thread(self._tokens.close)

    # --- plain requests ----------------------------------------------------------------------------------

    def url_for(self, path_or_url: str) -> str:
        """Absolute Graph URL; absolute URLs (nextLink) must point at the configured Graph host."""
        if path_or_url.startswith(("https://", "http://")):
            origin = self._config.graph_origin
            if not (path_or_url == origin or path_or_url.startswith(origin + "/")):
                # The bearer token must never travel to another host.
                raise ValueError(f"refusing to send a Graph token to {httpx.URL(path_or_url).host}")
            return path_or_url
        return f"{self._config.graph_url}/{path_or_url.lstrip('/')}"

    async def get(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        return await self.request("GET", path_or_url, params=params, json=json, headers=headers)

    async def post(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        return await self.request("POST", path_or_url, params=params, json=json, headers=headers)

    async def patch(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        return await self.request("PATCH", path_or_url, params=params, json=json, headers=headers)

    async def delete(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        return await self.request("DELETE", path_or_url, params=params, json=json, headers=headers)

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        safe_to_repeat: bool | None = None,
    ) -> GraphResponse:
        """Send one request with the retry policy; raises a GraphError subclass for any failure."""
        method = method.upper()
        url = self.url_for(path_or_url)
        if self.dry_run and method in WRITE_METHODS:
            return self._record_write(
                method, str(httpx.URL(url, params=params) if params else url), json, headers
            )
        if safe_to_repeat is None:
            safe_to_repeat = is_safe_to_repeat(method, url)
        return await self._send(
            method,
            url,
            params=params,
            json=json,
            headers=headers,
            safe_to_repeat=safe_to_repeat,
            cost=request_cost(method, self._relative(url), params),
        )

    def _record_write(
        self, method: str, url: str, body: Any, headers: Mapping[str, str] | None
    ) -> GraphResponse:
        write = RecordedWrite(method, url, body, dict(headers or {}))
        self.recorded_writes.append(write)
        GRAPH_DRY_RUN_WRITES.labels(method, route_template(url)).inc()
        log.info("dry-run: not sending %s %s", method, route_template(url))
        echo = {"dryRun": True, "method": method, "url": url, "body": body}
        return GraphResponse(
            status=202,
            headers={"content-type": "application/json"},
            content=jsonlib.dumps(echo).encode(),
            dry_run=True,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        safe_to_repeat: bool,
        cost: RequestCost,
    ) -> GraphResponse:
        """Send with the retry policy; every attempt first takes `cost` from the tenant's budgets."""
        tenant = self.tenant
        route = route_template(url)
        client_request_id = str(uuid.uuid4())
        attempt = 0
        waited = 0.0
        refreshed_token = False
        while True:
            attempt += 1
            token: str | None = None
            # Paced before taking a slot, so a request waiting for its budget does not hold one idle.
            await self._pacer.pace(tenant, cost)
            try:
                async with self._gate.slot(tenant):
                    # Checked after taking a slot: a caller queued for a slot must not slip out right after
                    # another caller's 429 closed the gate.
                    waited += await self._gate.wait_turn(tenant)
                    token = await self._tokens.get_token()
                    request_headers = {
                        **(headers or {}),
                        "Authorization": f"Bearer {token}",
                        "client-request-id": client_request_id,
                    }
                    started = time.monotonic()
                    response = await self._http.request(
                        method, url, params=params, json=json, headers=request_headers
                    )
                    content = await response.aread()
            except GraphTransient as token_error:
                # The sign-in service itself is down or unreachable: same policy as a 503.
                delay = self._policy.delay(attempt, token_error.retry_after, self._rng)
                if not self._policy.may_retry(attempt, waited, delay):
                    raise token_error.gave_up(attempt, waited) from None
                GRAPH_RETRIES.labels("token_unavailable").inc()
                await asyncio.sleep(delay)
                waited += delay
                continue
            except httpx.TransportError as exc:
                GRAPH_REQUESTS.labels(method, route, "error").inc()
                if may_have_reached_graph(exc):
                    count_request(None)
                network_error = GraphTransient(
                    f"Microsoft Graph could not be reached: {type(exc).__name__}.",
                    code="network_error",
                    action="Check the network path to MS_GRAPH_URL (proxy, firewall, DNS); it is retried "
                    "automatically.",
                )
                if not should_retry_network_error(exc, safe_to_repeat=safe_to_repeat):
                    log.warning(
                        "%s %s failed (%s), not repeated because it is not safe to; client-request-id=%s",
                        method,
                        route,
                        type(exc).__name__,
                        client_request_id,
                    )
                    raise network_error from None
                delay = self._policy.delay(attempt, None, self._rng)
                if not self._policy.may_retry(attempt, waited, delay):
                    raise network_error.gave_up(attempt, waited) from None
                GRAPH_RETRIES.labels("network").inc()
                count_retries()
                log.info("%s %s: %s, retrying in %.2f s", method, route, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                waited += delay
                continue

            elapsed = time.monotonic() - started
            status = response.status_code
            request_id = response.headers.get("request-id")
            GRAPH_REQUESTS.labels(method, route, str(status)).inc()
            count_request(status)
            GRAPH_REQUEST_SECONDS.labels(method, route).observe(elapsed)
            _count_resource_units(response.headers, method, route)
            log.debug(
                "%s %s -> %d in %.3f s request-id=%s client-request-id=%s",
                method,
                route,
                status,
                elapsed,
                request_id,
                client_request_id,
            )
            if status < 400:
                return GraphResponse(status, response.headers, content, request_id, client_request_id)

            error = classify_graph_error(
                status,
                content,
                headers=response.headers,
                request_id=request_id,
                admin_consent_url=self._config.admin_consent_url,
                group_scope=self._config.group_scope,
                feature=feature_of(method, route),
            )
            if (
                status in (401, 403)
                and not refreshed_token
                and not isinstance(error, GraphGuestBlocked | GraphUnmanageable)
            ):
                # Spec: a rejected token is refreshed and the call tried once more; newly granted consent
                # only shows up in a new token, hence 403 too.
                refreshed_token = True
                GRAPH_RETRIES.labels("token_refresh").inc()
                count_retries()
                log.info(
                    "%s %s -> %d (%s), refreshing the token and trying once more; request-id=%s",
                    method,
                    route,
                    status,
                    error.code,
                    request_id,
                )
                await self._tokens.invalidate(token)
                attempt -= 1
                continue
            if status in RETRYABLE_STATUSES:
                retry_after = (
                    error.retry_after
                    if isinstance(error, GraphThrottled)
                    else parse_retry_after(response.headers.get("retry-after"))
                )
                delay = self._policy.delay(attempt, retry_after, self._rng)
                if not self._policy.may_retry(attempt, waited, delay):
                    log.warning(
                        "%s %s -> %d, giving up after %d attempts; request-id=%s client-request-id=%s",
                        method,
                        route,
                        status,
                        attempt,
                        request_id,
                        client_request_id,
                    )
                    raise error.gave_up(attempt, waited)
                count_retries()
                if status == 429:
                    GRAPH_RETRIES.labels("throttled").inc()
                    await self._gate.block(tenant, delay)
                else:
                    GRAPH_RETRIES.labels("unavailable").inc()
                    log.info("%s %s -> %d, retrying in %.2f s", method, route, status, delay)
                    await asyncio.sleep(delay)
                    waited += delay
                continue
            log.warning(
                "%s %s -> %d %s; request-id=%s client-request-id=%s",
                method,
                route,
                status,
                error.code,
                request_id,
                client_request_id,
            )
            raise error

    # --- paging and counting -----------------------------------------------------------------------------

    async def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        """Every item of a collection, following @odata.nextLink exactly as Graph gives it."""
        response = await self.get(path, params=params, headers=headers)
        while True:
            body = response.json() or {}
            for item in body.get("value", []):
                yield item
            next_link = body.get("@odata.nextLink")
            if not next_link:
                return
            response = await self.get(next_link, headers=headers)

    async def count(self, path: str, params: Mapping[str, Any] | None = None) -> int:
        """The size of a collection via /$count (needs ConsistencyLevel: eventual)."""
        count_path = path if path.rstrip("/").endswith("/$count") else f"{path.rstrip('/')}/$count"
        response = await self.get(count_path, params=params, headers={"ConsistencyLevel": "eventual"})
        try:
            return int(response.text.strip().lstrip("\ufeff"))
        except ValueError:
            raise GraphTransient(
                f"Microsoft Graph answered $count with something that is not a number: {response.text[:80]!r}",
                status=response.status,
                request_id=response.request_id,
                action="Try again; report it with the request-id if it persists.",
            ) from None

    # --- $batch ------------------------------------------------------------------------------------------

    async def batch(self, requests: Sequence[BatchRequest]) -> list[BatchResult]:
        """One BatchResult per request, in request order; sent 20 per envelope, throttled items retried."""
        ids = assign_ids(requests)
        results: dict[int, BatchResult] = {}
        for chunk in chunk_indexes(requests, ids):
            await self._run_batch_chunk(requests, ids, chunk, results)
        return [results[index] for index in range(len(requests))]

    def _relative(self, url: str) -> str:
        if url.startswith(("https://", "http://")):
            absolute = self.url_for(url)
            return "/" + absolute[len(self._config.graph_url) :].lstrip("/")
        return "/" + url.lstrip("/")

    async def _run_batch_chunk(
        self,
        requests: Sequence[BatchRequest],
        ids: Sequence[str],
        chunk: Sequence[int],
        results: dict[int, BatchResult],
    ) -> None:
        pending = list(chunk)
        if self.dry_run:
            for index in [i for i in pending if requests[i].is_write]:
                request = requests[index]
                echo = self._record_write(
                    request.method.upper(), self.url_for(request.url), request.body, request.headers
                )
                results[index] = BatchResult(ids[index], echo.status, dict(echo.headers), echo.json())
            pending = [i for i in pending if not requests[i].is_write]

        attempt = 0
        waited = 0.0
        while pending:
            attempt += 1
            pending_ids = {ids[i] for i in pending}
            items = [self._batch_item(requests[i], ids[i], pending_ids) for i in pending]
            safe = all(is_safe_to_repeat(requests[i].method, self.url_for(requests[i].url)) for i in pending)
            # Microsoft prices each sub-request as if it were sent alone; the envelope itself is free.
            cost = sum((request_cost(item["method"], item["url"]) for item in items), FREE)
            envelope = await self._send(
                "POST",
                self.url_for("$batch"),
                params=None,
                json={"requests": items},
                headers=None,
                safe_to_repeat=safe,
                cost=cost,
            )
            body = envelope.json() or {}
            answered = {str(item.get("id")): item for item in body.get("responses", [])}
            count_batch_answers(len(items), sum(1 for item in answered.values() if _status_of(item) == 429))

            retry: list[int] = []
            retry_ids: set[str] = set()
            longest: float | None = None
            throttled = False
            failed_dependency: list[int] = []
            for index in pending:
                item = answered.get(ids[index])
                status = int(item.get("status", 0)) if item else 503
                GRAPH_BATCH_ITEMS.labels(str(status)).inc()
                item_headers = {
                    str(k).lower(): str(v) for k, v in ((item or {}).get("headers") or {}).items()
                }
                if status in RETRYABLE_STATUSES:
                    retry.append(index)
                    retry_ids.add(ids[index])
                    throttled = throttled or status == 429
                    after = parse_retry_after(item_headers.get("retry-after"))
                    if after is not None:
                        longest = after if longest is None else max(longest, after)
                    results[index] = self._batch_result(ids[index], status, item_headers, item)
                elif status == 424:
                    failed_dependency.append(index)
                else:
                    results[index] = self._batch_result(ids[index], status, item_headers, item)
            # A 424 caused by an item we are about to retry is retried with it; otherwise it is final.
            for index in failed_dependency:
                if any(d in retry_ids for d in requests[index].depends_on):
                    retry.append(index)
                    retry_ids.add(ids[index])
                else:
                    item = answered.get(ids[index]) or {}
                    item_headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
                    results[index] = self._batch_result(ids[index], 424, item_headers, item)
            if not retry:
                return
            delay = self._policy.delay(attempt, longest, self._rng)
            if not self._policy.may_retry(attempt, waited, delay):
                for index in retry:
                    result = results.get(index)
                    if result is not None and result.error is not None:
                        result.error.gave_up(attempt, waited)
                    elif result is None:
                        results[index] = self._batch_result(
                            ids[index], 424, {}, answered.get(ids[index]) or {}
                        )
                return
            retry.sort(key=lambda i: chunk.index(i))
            log.info("$batch: %d of %d items to retry in %.2f s", len(retry), len(pending), delay)
            GRAPH_RETRIES.labels("batch_item").inc(len(retry))
            count_retries(len(retry))
            if throttled:
                await self._gate.block(self.tenant, delay)
                waited += await self._gate.wait_turn(self.tenant)
            else:
                await asyncio.sleep(delay)
                waited += delay
            pending = retry

    def _batch_item(self, request: BatchRequest, request_id: str, pending_ids: set[str]) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": request_id,
            "method": request.method.upper(),
            "url": self._relative(request.url),
        }
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

    def _batch_result(
        self, request_id: str, status: int, headers: dict[str, str], item: Mapping[str, Any] | None
    ) -> BatchResult:
        body = (item or {}).get("body")
        error: GraphError | None = None
        if status >= 400:
            error = classify_graph_error(
                status,
                body if body is not None else {},
                headers=headers,
                admin_consent_url=self._config.admin_consent_url,
                group_scope=self._config.group_scope,
            )
        return BatchResult(request_id, status, headers, body, error)


def _status_of(item: Mapping[str, Any]) -> int:
    try:
        return int(item.get("status", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _count_resource_units(headers: httpx.Headers, method: str, route: str) -> None:
    value = headers.get("x-ms-resource-unit")
    if value is None:
        return
    try:
        units = float(value)
    except ValueError:
        return
    if units > 0:
        GRAPH_RESOURCE_UNITS.labels(method, route).inc(units)


def build_graph_client(settings: Settings, *, dry_run: bool | None = None) -> GraphClient:
    """The production GraphClient for these settings (throttle gate and pacing in Redis when EQUA_REDIS_URL is set)."""
    config = GraphConfig.from_settings(settings)
    return GraphClient(
        config,
        TokenProvider(config),
        gate=build_throttle_gate(config.redis_url, config.max_in_flight),
        pacer=build_request_pacer(
            config.redis_url, writes=config.write_budget, resource_units=config.resource_unit_budget
        ),
        dry_run=dry_run,
    )
