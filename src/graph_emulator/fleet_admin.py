"""/_emulator controls for scale: the fleet's layout, delta tokens' lifetime and expiry, a tenant throttled hard."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from .runtime import Emulator


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator  # type: ignore[no-any-return]


async def fleet(request: Request) -> Response:
    """The generated fleet: tenants (id, domain, size, users) with their groups' ids and member counts."""
    layout = _emulator(request).directory.fleet
    if layout is None:
        return JSONResponse(
            {"error": "this seed has no fleet (reset with graph_emulator.fleet.fleet_seed)"}, 404
        )
    return JSONResponse(layout)


def _delta_view(emu: Emulator) -> dict[str, Any]:
    tokens = emu.delta_tokens
    return {
        "issued": tokens.serial,
        "lifetime_seconds": tokens.lifetime_seconds,
        "expired_answers": tokens.expired_answers,
        "expired": {
            tenant: {"upto": floor, "status": status} for tenant, (floor, status) in tokens.floors.items()
        },
    }


async def delta(request: Request) -> Response:
    """GET: delta tokens issued, their lifetime, expiries. PUT {"lifetime_seconds": x}: change the lifetime."""
    emu = _emulator(request)
    if request.method == "PUT":
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        lifetime = float(body["lifetime_seconds"])
        if lifetime < 0:
            raise ValueError("lifetime_seconds must be 0 or more")
        emu.delta_tokens.lifetime_seconds = lifetime
    return JSONResponse(_delta_view(emu))


async def delta_expire(request: Request) -> Response:
    """Every delta and skip token issued so far stops working: for `?tenant=` or, without it, every tenant.

    Body (optional): `{"status": 400}` (Microsoft's answer for identity resources) or `{"status": 410}`.
    """
    emu = _emulator(request)
    raw = await request.body()
    body = json.loads(raw) if raw else {}
    ref = request.query_params.get("tenant")
    resolved = emu.directory.resolve(ref) if ref else None
    tenant_ids = [resolved.id] if resolved is not None else list(emu.directory.tenants)
    emu.delta_tokens.expire(tenant_ids, int(body.get("status", 400)))
    return JSONResponse(_delta_view(emu))


async def tenant_throttle(request: Request) -> Response:
    """GET: the tenants throttled hard. PUT `?tenant=` {"rate_429": 1.0, "retry_after_seconds": 2}: that share
    of the tenant's Graph requests (and $batch items) answers 429, whatever its buckets hold; 0 ends it."""
    emu = _emulator(request)
    if request.method == "PUT":
        ref = request.query_params.get("tenant")
        tenant = emu.directory.resolve(ref) if ref else emu.directory.default
        assert tenant is not None  # the loopback guard answers 404 for an unknown tenant
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        emu.throttle.throttle_tenant(
            tenant.id, float(body.get("rate_429", 1.0)), int(body.get("retry_after_seconds", 1))
        )
    hard = emu.throttle.hard
    return JSONResponse(
        {t: {"rate_429": h.rate_429, "retry_after_seconds": h.retry_after_seconds} for t, h in hard.items()}
    )


def fleet_routes(r: Callable[[str, Any, list[str]], Route]) -> list[Route]:
    return [
        r("/fleet", fleet, ["GET"]),
        r("/delta", delta, ["GET", "PUT"]),
        r("/delta/expire", delta_expire, ["POST"]),
        r("/tenant-throttle", tenant_throttle, ["GET", "PUT"]),
    ]
