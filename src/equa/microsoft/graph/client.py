"""GraphClient: the one way to call Graph: verbs, paging, $count and $batch, over GraphTransport's retries."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from equa.microsoft.graph.auth import TokenProvider, msal_http_client
from equa.microsoft.graph.batch import (
    WRITE_METHODS,
    BatchRequest,
    BatchResult,
    assign_ids,
    batch_item,
    batch_result,
    chunk_indexes,
    sort_answers,
    status_of,
)
from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.errors import GraphGuestBlocked, GraphTransient, GraphUnmanageable
from equa.microsoft.graph.pacing import FREE, build_request_pacer, request_cost
from equa.microsoft.graph.responses import GraphResponse
from equa.microsoft.graph.retry import Attempts, TryAgain, is_safe_to_repeat, retrying
from equa.microsoft.graph.tenant_clients import TenantClients
from equa.microsoft.graph.throttle import build_throttle_gate
from equa.microsoft.graph.transport import GraphTransport
from equa.microsoft.graph.usage import count_batch_answers

if TYPE_CHECKING:
    from equa.settings import Settings

# The client's logger name, shared with transport.py: operators filter on it.
log = logging.getLogger("equa.microsoft.graph.client")


class GraphClient(GraphTransport):
    """The one way to call Graph. Use as `async with` or call `aclose()`."""

    _tenant_clients: TenantClients | None = None

    # --- tenants (multi-tenant mode) ---------------------------------------------------------------------

    def for_tenant(self, tenant_id: str) -> GraphClient:
        """The client of one tenant: this one for its own tenant, else a sibling sharing the HTTP pool, throttle
        gate and pacer, with its own token provider (authority {host}/{tenant}). Siblings are never closed by
        their users: this client drops the idle ones and closes them all in `aclose()`."""
        if tenant_id.lower() == self.tenant.lower():
            return self
        if self._tenant_clients is None:
            msal_http = msal_http_client(self._config)
            self._tenant_clients = TenantClients(
                lambda tenant: self._sibling(tenant, msal_http),
                max_clients=self._config.max_tenant_clients,
                idle_seconds=self._config.tenant_idle_seconds,
            )
            self._msal_http = msal_http
        return self._tenant_clients.get(tenant_id)

    @property
    def tenant_clients(self) -> TenantClients | None:
        return self._tenant_clients

    def _sibling(self, tenant_id: str, msal_http: Any) -> GraphClient:
        config = self._config.for_tenant(tenant_id)
        sibling = GraphClient(
            config,
            TokenProvider(config, http=msal_http),
            gate=self._gate,
            pacer=self._pacer,
            http=self._http,
            policy=self._policy,
            dry_run=self.dry_run,
            rng=self._rng,
        )
        sibling.refusals = self.refusals
        return sibling

    async def aclose(self) -> None:
        if self._tenant_clients is not None:
            self._tenant_clients.close()
            self._msal_http.close()
            self._tenant_clients = None
        await super().aclose()

    # --- plain requests ----------------------------------------------------------------------------------

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

        if not pending:
            return
        retry: list[int] = []
        answered: dict[str, Any] = {}
        refreshed_token = False

        async def attempt_once(tries: Attempts) -> TryAgain | None:
            nonlocal pending, retry, answered, refreshed_token
            # The token the envelope goes out with (the cached one): dropped if its items are rejected.
            token = await self._tokens.get_token()
            pending_ids = {ids[i] for i in pending}
            items = [
                batch_item(requests[i], ids[i], pending_ids, self._relative(requests[i].url)) for i in pending
            ]
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
            count_batch_answers(len(items), sum(1 for item in answered.values() if status_of(item) == 429))

            answers = sort_answers(
                requests,
                ids,
                pending,
                answered,
                results,
                self._config.admin_consent_url,
                self._config.group_scope,
            )
            retry = answers.retry
            # Spec: a rejected token is refreshed and the call tried once more, inside $batch too: the items
            # answered 401 (or a 403 a new token may cure, newly granted consent) get one refresh and one retry.
            rejected = [] if refreshed_token else [i for i in pending if _token_rejected(results.get(i))]
            if rejected:
                refreshed_token = True
                log.info(
                    "$batch: %d item(s) rejected the token, refreshing it and trying them once more",
                    len(rejected),
                )
                await self._tokens.invalidate(token)
                if not retry:
                    retry = sorted(rejected, key=lambda i: chunk.index(i))
                    pending = retry
                    return TryAgain("token_refresh", None, items=len(retry), at_once=True)
                retry = list(dict.fromkeys([*retry, *rejected]))
            if not retry:
                return None
            retry.sort(key=lambda i: chunk.index(i))
            note = f"$batch: {len(retry)} of {len(pending)} items to retry"
            pending = retry
            return TryAgain(
                "batch_item",
                None,
                retry_after=answers.longest_retry_after,
                throttled=answers.throttled,
                items=len(retry),
                note=note,
            )

        def give_up(_: TryAgain, tries: Attempts) -> None:
            # The items keep their last answer, marked as given up; an item never answered fails its dependency.
            for index in retry:
                result = results.get(index)
                if result is not None and result.error is not None:
                    result.error.gave_up(tries.attempt, tries.waited)
                elif result is None:
                    results[index] = batch_result(
                        ids[index],
                        424,
                        {},
                        answered.get(ids[index]) or {},
                        self._config.admin_consent_url,
                        self._config.group_scope,
                    )

        await retrying(
            attempt_once, give_up, policy=self._policy, gate=self._gate, tenant=self.tenant, rng=self._rng
        )


def _token_rejected(result: BatchResult | None) -> bool:
    """A $batch item answered as Graph answers a stale token (the rule transport.py follows for a request)."""
    return (
        result is not None
        and result.status in (401, 403)
        and not isinstance(result.error, GraphGuestBlocked | GraphUnmanageable)
    )


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
