"""The /_emulator control API: reset, faults, stats, state, and test set-up that bypasses Graph's rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .batch_faults import batch_item_faults_control
from .consent_admin import consent_routes
from .deleted_items import age_deleted_item, deleted_items_control
from .fleet_admin import fleet_routes
from .seeds import complete_group, complete_unit, complete_user, load_unit_roles
from .state import Tenant, iso_now

if TYPE_CHECKING:
    from .runtime import Emulator

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator  # type: ignore[no-any-return]


def _tenant(request: Request) -> Tenant | None:
    emu = _emulator(request)
    ref = request.query_params.get("tenant")
    return emu.directory.resolve(ref) if ref else emu.directory.default


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def loopback_only(handler: Any) -> Any:
    async def guarded(request: Request) -> Response:
        client = request.client.host if request.client else ""
        if client not in LOOPBACK:
            return _problem(403, "emulator controls answer on the loopback interface only")
        tenant_ref = request.query_params.get("tenant")
        if tenant_ref and _tenant(request) is None:
            return _problem(404, f"unknown tenant {tenant_ref}")
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except (ValueError, TypeError, KeyError) as error:
            return _problem(400, str(error))

    return guarded


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    import json

    return json.loads(raw)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def info(request: Request) -> Response:
    emu = _emulator(request)
    tenants = []
    for tenant in emu.directory.tenants.values():
        tenants.append(
            {
                "id": tenant.id,
                "domain": tenant.domain,
                "size": tenant.size,
                "apps": [
                    {"clientId": a.client_id, "displayName": a.display_name, "roles": sorted(a.roles)}
                    for a in tenant.apps.values()
                ],
                "users": len(tenant.users),
                "groups": len(tenant.groups),
                "administrativeUnits": len(tenant.units),
            }
        )
    return JSONResponse(
        {"base_url": emu.base_url, "default_tenant": emu.directory.default_tenant_id, "tenants": tenants}
    )


async def reset(request: Request) -> Response:
    body = await _json(request)
    _emulator(request).reset(body.get("seed"))
    return Response(status_code=204)


async def faults(request: Request) -> Response:
    emu = _emulator(request)
    if request.method == "PUT":
        emu.set_faults(await _json(request))
    return JSONResponse(emu.faults.faults.as_dict())


async def stats(request: Request) -> Response:
    emu = _emulator(request)
    if request.method == "DELETE":
        emu.stats.reset()
        return Response(status_code=204)
    return JSONResponse(emu.stats.as_dict())


async def add_user(request: Request) -> Response:
    tenant = _tenant(request)
    assert tenant is not None
    user = complete_user(await _json(request), tenant.domain)
    tenant.put_user(user)
    return JSONResponse(user, status_code=201)


async def add_group(request: Request) -> Response:
    tenant = _tenant(request)
    assert tenant is not None
    body = await _json(request)
    group = complete_group(body, tenant.domain, created=iso_now())
    tenant.put_group(group)
    for member_id in body.get("members", []):
        tenant.add_member(group["id"], member_id)
    for owner_id in body.get("owners", []):
        tenant.owners[group["id"]].add(owner_id)
    return JSONResponse(group, status_code=201)


async def group_members(request: Request) -> Response:
    tenant = _tenant(request)
    assert tenant is not None
    group_id = request.path_params["group_id"]
    if group_id not in tenant.groups:
        return _problem(404, f"no group {group_id}")
    if request.method == "POST":
        body = await _json(request)
        for member_id in body.get("ids", []):
            tenant.add_member(group_id, member_id)
        return Response(status_code=204)
    return JSONResponse({"ids": list(tenant.members[group_id].ordered())})


async def one_group(request: Request) -> Response:
    tenant = _tenant(request)
    assert tenant is not None
    group_id = request.path_params["group_id"]
    if request.method == "DELETE":
        # Deleted behind the app's back: no Graph call, no throttling, just gone.
        if tenant.remove_group(group_id) is None:
            return _problem(404, f"no group {group_id}")
        return Response(status_code=204)
    group = tenant.groups.get(group_id)
    if group is None:
        return _problem(404, f"no group {group_id}")
    return JSONResponse(group)


def _matches(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    if isinstance(value, list):
        return any(str(v).lower() == wanted.lower() for v in value)
    return value is not None and str(value).lower() == wanted.lower()


async def find_groups(request: Request) -> Response:
    tenant = _tenant(request)
    assert tenant is not None
    wanted = {k: v for k, v in request.query_params.items() if k != "tenant"}
    found = [g for g in tenant.groups.values() if all(_matches(g.get(k), v) for k, v in wanted.items())]
    return JSONResponse({"value": found})


def _unit_view(tenant: Tenant, unit_id: str) -> dict[str, Any]:
    return {**tenant.units[unit_id], "members": list(tenant.unit_members[unit_id].ordered())}


async def administrative_units(request: Request) -> Response:
    """GET: every unit with its member ids. POST: create a unit (any Graph properties, plus "members": [ids])."""
    tenant = _tenant(request)
    assert tenant is not None
    if request.method == "POST":
        body = await _json(request)
        unit = complete_unit(body)
        tenant.put_unit(unit)
        for member_id in body.get("members", []):
            tenant.unit_members[unit["id"]].add(member_id)
        load_unit_roles(tenant, unit["id"], body.get("scopedRoleMembers", []))
        return JSONResponse(_unit_view(tenant, unit["id"]), status_code=201)
    return JSONResponse({"value": [_unit_view(tenant, unit_id) for unit_id in sorted(tenant.units)]})


async def administrative_unit_members(request: Request) -> Response:
    """GET: the unit's member ids. POST / DELETE {"ids": [...]}: add objects to the unit or take them out, without
    Graph's permission checks (a tenant administrator's change in Microsoft Entra)."""
    tenant = _tenant(request)
    assert tenant is not None
    unit_id = request.path_params["unit_id"]
    if unit_id not in tenant.units:
        return _problem(404, f"no administrative unit {unit_id}")
    if request.method == "POST":
        body = await _json(request)
        for object_id in body.get("ids", []):
            tenant.unit_members[unit_id].add(object_id)
        return Response(status_code=204)
    if request.method == "DELETE":
        body = await _json(request)
        for object_id in body.get("ids", []):
            tenant.unit_members[unit_id].discard(object_id)
        return Response(status_code=204)
    return JSONResponse({"ids": list(tenant.unit_members[unit_id].ordered())})


async def administrative_unit_roles(request: Request) -> Response:
    """GET: the roles held within the unit, by app id. PUT {"clientId", "roles": [...]}: set one app's unit-scoped
    roles (an empty list takes them all away)."""
    tenant = _tenant(request)
    assert tenant is not None
    unit_id = request.path_params["unit_id"]
    if unit_id not in tenant.units:
        return _problem(404, f"no administrative unit {unit_id}")
    if request.method == "PUT":
        body = await _json(request)
        if not isinstance(body.get("clientId"), str) or not isinstance(body.get("roles", []), list):
            return _problem(400, 'expected {"clientId": "...", "roles": [...]}')
        load_unit_roles(tenant, unit_id, [body])
    held = tenant.unit_roles.get(unit_id, {})
    return JSONResponse({client_id: sorted(roles) for client_id, roles in held.items()})


async def revoke_tokens(request: Request) -> Response:
    _emulator(request).tokens.revoke_all()
    return Response(status_code=204)


async def app_roles(request: Request) -> Response:
    tenant = _tenant(request)
    assert tenant is not None
    app = tenant.apps.get(request.path_params["client_id"])
    if app is None:
        return _problem(404, "no such app")
    body = await _json(request)
    app.roles = set(body.get("roles", []))
    return Response(status_code=204)


async def tenant_policy(request: Request) -> Response:
    tenant = _tenant(request)
    assert tenant is not None
    body = await _json(request)
    if body.get("allow_guests_in_groups") is not None:
        tenant.allow_guests_in_groups = bool(body["allow_guests_in_groups"])
    if body.get("decline_consent") is not None:
        tenant.decline_consent = bool(body["decline_consent"])
    return JSONResponse(
        {"allow_guests_in_groups": tenant.allow_guests_in_groups, "decline_consent": tenant.decline_consent}
    )


async def replicate_now(request: Request) -> Response:
    """Settle every kind of lag at once: new and changed groups, memberships, and the advanced-query index."""
    for tenant in _emulator(request).directory.tenants.values():
        tenant.settle()
    return Response(status_code=204)


async def consistency(request: Request) -> Response:
    """GET: the replication lag in force. PUT {"lag_seconds": x}: change it (0: every write is read back at once)."""
    emu = _emulator(request)
    if request.method == "PUT":
        body = await _json(request)
        emu.set_lag(float(body["lag_seconds"]))
    return JSONResponse(
        {
            "lag_seconds": emu.lag_seconds,
            "time_scale": emu.time_scale,
            "effective_lag_seconds": emu.replication_lag_seconds(),
        }
    )


def control_routes() -> list[Route]:
    def r(path: str, handler: Any, methods: list[str]) -> Route:
        return Route(f"/_emulator{path}", loopback_only(handler), methods=methods)

    return [
        r("/health", health, ["GET"]),
        r("/info", info, ["GET"]),
        r("/reset", reset, ["POST"]),
        r("/faults", faults, ["GET", "PUT"]),
        r("/batch-item-faults", batch_item_faults_control, ["GET", "PUT", "DELETE"]),
        r("/deleted-items", deleted_items_control, ["GET"]),
        r("/deleted-items/{group_id}", age_deleted_item, ["PUT"]),
        r("/stats", stats, ["GET", "DELETE"]),
        r("/users", add_user, ["POST"]),
        r("/groups", add_group, ["POST"]),
        r("/groups", find_groups, ["GET"]),
        r("/groups/{group_id}", one_group, ["GET", "DELETE"]),
        r("/groups/{group_id}/members", group_members, ["GET", "POST"]),
        r("/administrative-units", administrative_units, ["GET", "POST"]),
        r("/administrative-units/{unit_id}/members", administrative_unit_members, ["GET", "POST", "DELETE"]),
        r("/administrative-units/{unit_id}/roles", administrative_unit_roles, ["GET", "PUT"]),
        r("/revoke-tokens", revoke_tokens, ["POST"]),
        r("/apps/{client_id}/roles", app_roles, ["PUT"]),
        r("/tenant-policy", tenant_policy, ["PUT"]),
        r("/replicate-now", replicate_now, ["POST"]),
        r("/consistency", consistency, ["GET", "PUT"]),
        *consent_routes(r),
        *fleet_routes(r),
    ]
