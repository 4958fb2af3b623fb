"""The running emulator: directory, tokens, faults, throttling, stats, and execution of one Graph request."""

from __future__ import annotations

import copy
import random
import uuid
from collections import Counter
from typing import Any

from .delta_tokens import DeltaTokens
from .errors import GraphError, error_body, throttled_body
from .faults import FaultInjector, Faults
from .fleet import load_directory
from .listing import JSON_CONTENT_TYPE
from .router import GraphRequest, GraphResponse, match, normalize_path, resource_units
from .seeds import default_seed
from .state import Directory
from .throttle import Throttle
from .tokens import TokenService

# The default profile is eventually consistent, as Microsoft Graph is: a write is read back after this long
# (divided by time_scale). Tests that need read-your-writes ask for lag 0 by name.
DEFAULT_LAG_SECONDS = 1.0

FAULT_ERRORS = {
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please try again later."),
    504: ("UnknownError", "The operation has timed out."),
}


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: Counter[str] = Counter()
        self.graph_requests = 0
        self.batch_subrequests = 0
        self.writes = 0
        self.throttled = 0
        self.token_requests = 0
        self.token_requests_by_tenant: Counter[str] = Counter()  # tenant id (or the unknown name asked for)
        self.tokens_issued_by_tenant: Counter[str] = Counter()
        self.graph_requests_by_tenant: Counter[str] = (
            Counter()
        )  # authenticated Graph HTTP requests ($batch: 1)
        self.faults_injected: Counter[str] = Counter()

    def count_token_request(self, tenant: str) -> None:
        self.token_requests_by_tenant[tenant] += 1

    def count_token_issued(self, tenant_id: str) -> None:
        self.tokens_issued_by_tenant[tenant_id] += 1

    def fault(self, kind: str) -> None:
        self.faults_injected[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "graph_requests": self.graph_requests,
            "batch_subrequests": self.batch_subrequests,
            "writes": self.writes,
            "throttled": self.throttled,
            "token_requests": self.token_requests,
            "token_requests_by_tenant": dict(self.token_requests_by_tenant),
            "tokens_issued_by_tenant": dict(self.tokens_issued_by_tenant),
            "graph_requests_by_tenant": dict(self.graph_requests_by_tenant),
            "faults_injected": dict(self.faults_injected),
        }


class Emulator:
    def __init__(
        self,
        seed: dict[str, Any] | None = None,
        *,
        time_scale: float = 1.0,
        throttling: bool = True,
        faults: dict[str, Any] | None = None,
        lag_seconds: float = DEFAULT_LAG_SECONDS,
    ) -> None:
        self.seed = copy.deepcopy(seed) if seed is not None else default_seed()
        self.initial_lag_seconds = lag_seconds
        self.lag_seconds = lag_seconds
        self.directory: Directory = load_directory(self.seed)
        self.time_scale = time_scale
        self.tokens = TokenService()
        self.faults = FaultInjector(Faults.from_dict(faults))
        self.throttle = Throttle(time_scale, throttling)
        self.stats = Stats()
        self.base_url = ""
        self.shuffle = random.Random(self.faults.faults.seed_random)
        self.delta_rounds: dict[str, list[dict[str, Any]]] = {}
        self.delta_tokens = DeltaTokens()
        self.consent_flows: dict[str, Any] = {}  # admin consent pages in progress (consent.ConsentFlow by id)

    @property
    def graph_base(self) -> str:
        return f"{self.base_url}/v1.0"

    def replication_lag_seconds(self) -> float:
        """Seconds before a Graph write is seen by reads and the index: the profile's lag, or the fault's."""
        configured = self.faults.faults.replication_lag_seconds or self.lag_seconds
        return configured / self.time_scale

    def set_lag(self, lag_seconds: float) -> None:
        if lag_seconds < 0:
            raise ValueError("lag_seconds must be 0 or more")
        self.lag_seconds = lag_seconds
        if lag_seconds == 0:
            for tenant in self.directory.tenants.values():
                tenant.settle()

    def reset(self, seed: dict[str, Any] | None = None) -> None:
        self.seed = copy.deepcopy(seed) if seed is not None else default_seed()
        self.directory = load_directory(self.seed)
        self.lag_seconds = self.initial_lag_seconds
        self.set_faults({})
        self.throttle.reset()
        self.stats.reset()
        self.delta_rounds.clear()
        self.consent_flows.clear()
        self.delta_tokens.reset()

    def set_faults(self, faults: dict[str, Any]) -> None:
        self.faults.configure(Faults.from_dict(faults))
        self.shuffle = random.Random(self.faults.faults.seed_random)

    # ---- executing one Graph operation -------------------------------------------------------------

    def error(self, req_ids: tuple[str, str | None], err: GraphError, units: int = 1) -> GraphResponse:
        body = error_body(err.code, err.message, req_ids[0], req_ids[1])
        headers = {"Content-Type": "application/json", "x-ms-resource-unit": str(units), **err.headers}
        return GraphResponse(err.status, body, headers)

    def throttled(self, req_ids: tuple[str, str | None], retry_after: int, units: int) -> GraphResponse:
        self.stats.throttled += 1
        headers = {
            "Content-Type": "application/json",
            "x-ms-resource-unit": str(units),
            "Retry-After": str(retry_after),
        }
        return GraphResponse(429, throttled_body(req_ids[0]), headers)

    def execute(self, req: GraphRequest) -> GraphResponse:
        """Route, inject faults, throttle, authorise and run one Graph request or $batch item."""
        ids = (req.request_id, req.client_request_id)
        req.path = normalize_path(req.path)
        try:
            route_, params = match(req.method, req.path)
        except GraphError as err:
            self.stats.requests[f"{req.method} /v1.0(unmatched)"] += 1
            return self.error(ids, err)
        self.stats.requests[f"{req.method} /v1.0{route_.template}"] += 1
        units = resource_units(route_, req.query)
        is_write = req.method in ("POST", "PATCH", "DELETE", "PUT")
        if is_write:
            self.stats.writes += 1
        injected = self.faults.pick_status()
        if injected == 429:
            self.stats.fault("429")
            return self.throttled(ids, self.faults.faults.retry_after_seconds, units)
        if injected in FAULT_ERRORS:
            self.stats.fault(str(injected))
            code, message = FAULT_ERRORS[injected]
            headers = (
                {"Retry-After": str(self.faults.faults.retry_after_seconds)}
                if (injected == 503 and self.faults.faults.retry_after_on_503)
                else {}
            )
            return self.error(ids, GraphError(injected, code, message, headers), units)
        verdict = self.throttle.charge(req.tenant.id, req.tenant.size, req.app.client_id, units, is_write)
        if verdict.retry_after:
            response = self.throttled(ids, verdict.retry_after, units)
            response.headers["x-ms-throttle-scope"] = verdict.scope
            response.headers["x-ms-throttle-information"] = verdict.information
            return response
        try:
            response = route_.handler(req, self, params)
        except GraphError as err:
            response = self.error(ids, err, units)
        response.headers.setdefault("x-ms-resource-unit", str(units))
        if verdict.limit_percentage is not None:
            response.headers["x-ms-throttle-limit-percentage"] = str(verdict.limit_percentage)
        if isinstance(response.body, dict) and "Content-Type" not in response.headers:
            response.headers["Content-Type"] = JSON_CONTENT_TYPE
            response.headers["OData-Version"] = "4.0"
        elif isinstance(response.body, str):
            response.headers["Content-Type"] = "text/plain"
        return response


def new_request_id() -> str:
    return str(uuid.uuid4())
