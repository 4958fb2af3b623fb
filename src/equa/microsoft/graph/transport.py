"""GraphTransport: one request to Microsoft Graph, with the retry policy, pacing, the throttle gate, the token and
dry-run recording. GraphClient (client.py) builds the calls its users make (verbs, paging, $count, $batch) on it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any, Self

import httpx

from equa.microsoft.graph.auth import TokenProvider
from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.errors import (
    GraphError,
    GraphGuestBlocked,
    GraphThrottled,
    GraphTransient,
    GraphUnmanageable,
    classify_graph_error,
    refuses_the_app,
)
from equa.microsoft.graph.metrics import (
    GRAPH_DRY_RUN_WRITES,
    GRAPH_REQUEST_SECONDS,
    GRAPH_REQUESTS,
    count_resource_units,
)
from equa.microsoft.graph.own_writes import OwnWrites
from equa.microsoft.graph.pacing import RequestCost, RequestPacer, build_request_pacer
from equa.microsoft.graph.permissions import feature_of
from equa.microsoft.graph.responses import GraphResponse, RecordedWrite
from equa.microsoft.graph.retry import (
    RETRYABLE_STATUSES,
    Attempts,
    RetryPolicy,
    TryAgain,
    may_have_reached_graph,
    parse_retry_after,
    retrying,
    should_retry_network_error,
)
from equa.microsoft.graph.routes import route_template
from equa.microsoft.graph.throttle import ThrottleGate, build_throttle_gate
from equa.microsoft.graph.usage import count_request

# The client's logger name, kept: operators filter on it.
log = logging.getLogger("equa.microsoft.graph.client")


class GraphTransport:
    """Owns the HTTP client, token provider, throttle gate and pacer; sends one request with every retry."""

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
        # The member changes this client made lately, laid over Graph's lagging reads by the services.
        self.own_writes = OwnWrites()
        self._gate: ThrottleGate = gate or build_throttle_gate(None, config.max_in_flight)
        self._pacer = pacer or build_request_pacer(
            None, writes=config.write_budget, resource_units=config.resource_unit_budget
        )
        self._owns_http = http is None
        self._http = http or config.http_client()
        self._policy = policy or RetryPolicy(
            max_attempts=config.max_attempts, max_total_wait=config.max_retry_wait_seconds
        )
        self.dry_run = config.dry_run if dry_run is None else dry_run
        self.recorded_writes: list[RecordedWrite] = []
        self._rng = rng
        # Tenant -> the code with which it last refused the app itself (consent revoked); shared with the
        # clients of other tenants this one makes (GraphClient.for_tenant), read by whoever tracks consent.
        self.refusals: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(graph_url={self._config.graph_url!r}, tenant={self.tenant!r}, dry_run={self.dry_run})"

    @property
    def tenant(self) -> str:
        return self._config.tenant_id

    @property
    def tokens(self) -> TokenProvider:
        return self._tokens

    async def __aenter__(self) -> Self:
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

    def _relative(self, url: str) -> str:
        if url.startswith(("https://", "http://")):
            absolute = self.url_for(url)
            return "/" + absolute[len(self._config.graph_url) :].lstrip("/")
        return "/" + url.lstrip("/")

    def _record_write(
        self, method: str, url: str, body: Any, headers: Mapping[str, str] | None
    ) -> GraphResponse:
        write = RecordedWrite(method, url, body, dict(headers or {}))
        self.recorded_writes.append(write)
        GRAPH_DRY_RUN_WRITES.labels(method, route_template(url)).inc()
        log.info("dry-run: not sending %s %s", method, route_template(url))
        return GraphResponse.dry_run_echo(method, url, body)

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
        refreshed_token = False

        async def attempt_once(tries: Attempts) -> GraphResponse | TryAgain:
            nonlocal refreshed_token
            token: str | None = None
            # Paced before taking a slot, so a request waiting for its budget does not hold one idle.
            await self._pacer.pace(tenant, cost)
            try:
                async with self._gate.slot(tenant):
                    # Checked after taking a slot: a caller queued for a slot must not slip out right after
                    # another caller's 429 closed the gate.
                    tries.waited += await self._gate.wait_turn(tenant)
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
                return TryAgain(
                    "token_unavailable", token_error, retry_after=token_error.retry_after, counted=False
                )
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
                return TryAgain("network", network_error, note=f"{method} {route}: {type(exc).__name__}")

            elapsed = time.monotonic() - started
            status = response.status_code
            request_id = response.headers.get("request-id")
            GRAPH_REQUESTS.labels(method, route, str(status)).inc()
            count_request(status)
            GRAPH_REQUEST_SECONDS.labels(method, route).observe(elapsed)
            count_resource_units(response.headers, method, route)
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
                log.info(
                    "%s %s -> %d (%s), refreshing the token and trying once more; request-id=%s",
                    method,
                    route,
                    status,
                    error.code,
                    request_id,
                )
                await self._tokens.invalidate(token)
                return TryAgain("token_refresh", error, at_once=True)
            if status in RETRYABLE_STATUSES:
                retry_after = (
                    error.retry_after
                    if isinstance(error, GraphThrottled)
                    else parse_retry_after(response.headers.get("retry-after"))
                )
                return TryAgain(
                    "throttled" if status == 429 else "unavailable",
                    error,
                    retry_after=retry_after,
                    throttled=status == 429,
                    note=None if status == 429 else f"{method} {route} -> {status}",
                    given_up_note=(
                        f"{method} {route} -> {status}, giving up after {tries.attempt} attempts; "
                        f"request-id={request_id} client-request-id={client_request_id}"
                    ),
                )
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

        def give_up(last: TryAgain, tries: Attempts) -> GraphResponse:
            assert last.error is not None
            if last.given_up_note:
                log.warning("%s", last.given_up_note)
            raise last.error.gave_up(tries.attempt, tries.waited) from None

        try:
            return await retrying(
                attempt_once, give_up, policy=self._policy, gate=self._gate, tenant=tenant, rng=self._rng
            )
        except GraphError as error:
            if refuses_the_app(error):
                self.refusals[tenant] = error.code or "refused"
            raise
