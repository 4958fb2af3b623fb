"""Faults aimed at $batch items: the next N items matching a method and a path answer a given status.

Random faults (faults.py) hit any request; these hit exactly the items a test names, in the order the emulator runs
them, so a test can say "the next two member writes inside $batch answer 503" or "answer 401, as Graph does for an
access token that expired while the envelope was on its way". Set them with PUT /_emulator/batch-item-faults:

    {"rules": [{"method": "PATCH", "path": "/groups/", "status": 503, "times": 2}]}

`method` (optional) matches the item's method, `path` (optional) is a prefix of its path (relative to /v1.0,
e.g. "/groups/{id}/members"), `times` is how many matching items the rule fails before it is spent. An item takes
the first rule that matches and still has times left. A reset clears every rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import GraphError

if TYPE_CHECKING:
    from .runtime import Emulator

# What Graph answers for each status a rule may inject.
ITEM_ERRORS: dict[int, tuple[str, str]] = {
    401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    429: ("TooManyRequests", "Please retry again later."),
    500: ("InternalServerError", "An internal server error occurred."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please try again later."),
    504: ("UnknownError", "The operation has timed out."),
}


@dataclass
class ItemFaultRule:
    status: int
    times: int = 1
    method: str | None = None
    path: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemFaultRule:
        unknown = sorted(set(data) - {"status", "times", "method", "path"})
        if unknown:
            raise ValueError(f"unknown batch item fault settings: {', '.join(unknown)}")
        status = int(data["status"])
        if status not in ITEM_ERRORS:
            raise ValueError(f"status must be one of {', '.join(str(s) for s in sorted(ITEM_ERRORS))}")
        times = int(data.get("times", 1))
        if times < 1:
            raise ValueError("times must be 1 or more")
        method = data.get("method")
        path = data.get("path")
        return cls(
            status=status,
            times=times,
            method=str(method).upper() if method else None,
            path=str(path) if path else None,
        )

    def matches(self, method: str, path: str) -> bool:
        if self.times <= 0:
            return False
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or path.startswith(self.path)


class BatchItemFaults:
    """The rules in force; `take` spends one time of the first rule that matches an item."""

    def __init__(self) -> None:
        self.rules: list[ItemFaultRule] = []
        self.injected = 0

    def configure(self, rules: list[dict[str, Any]]) -> None:
        self.rules = [ItemFaultRule.from_dict(rule) for rule in rules]

    def clear(self) -> None:
        self.rules = []
        self.injected = 0

    def take(self, method: str, path: str) -> GraphError | None:
        for rule in self.rules:
            if rule.matches(method, path):
                rule.times -= 1
                self.injected += 1
                code, message = ITEM_ERRORS[rule.status]
                headers = {"Retry-After": "1"} if rule.status == 429 else {}
                if rule.status == 401:
                    headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
                return GraphError(rule.status, code, message, headers)
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"rules": [asdict(rule) for rule in self.rules], "injected": self.injected}


async def batch_item_faults_control(request: Request) -> Response:
    """GET: the rules left; PUT {"rules": [...]}: replace them; DELETE: clear them."""
    emu: Emulator = request.app.state.emulator
    faults = emu.batch_item_faults
    if request.method == "PUT":
        import json

        raw = await request.body()
        body = json.loads(raw) if raw else {}
        rules = body.get("rules") if isinstance(body, dict) else None
        if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
            raise ValueError('expected {"rules": [{"status": 503, "times": 1, "method": ..., "path": ...}]}')
        faults.configure(rules)
    elif request.method == "DELETE":
        faults.clear()
    return JSONResponse(faults.as_dict())
