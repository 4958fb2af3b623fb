"""Graph /directory/deletedItems for groups: a deleted Microsoft 365 group stays 30 days, restorable with its members.

Deleting a Unified group (through Graph, or behind the app's back with DELETE /_emulator/groups/{id}) soft-deletes
it (state.Tenant.remove_group); a security group is deleted for good at once and never shows here. Retention follows
the emulator's time_scale (at time_scale 86400, a day lasts a second), and PUT /_emulator/deleted-items/{id} with
`{"age_days": N}` makes an item N days older, so a test can look past the 30 days at once.

Permissions, as Microsoft's pages for these calls list them for groups: reading deleted items takes Group.Read.All
(or broader); restoring takes Group.ReadWrite.All (or Directory.ReadWrite.All).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import GraphError, bad_request, not_found
from .groups import GROUP_PROPERTIES
from .listing import entity
from .odata import project
from .router import WRITE_GROUP, GraphRequest, GraphResponse, route
from .seeds import GROUP_DEFAULT_PROPERTIES
from .state import Tenant, is_guid

if TYPE_CHECKING:
    from .runtime import Emulator

RETENTION_DAYS = 30
READ_DELETED_GROUPS = frozenset(
    {"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
NICKNAME_TAKEN = "Another object with the same value for property mailNickname already exists."


def purge_expired(tenant: Tenant, emu: Emulator) -> None:
    """Forget the groups deleted more than RETENTION_DAYS ago (in emulated time): gone for good."""
    horizon = RETENTION_DAYS * 86400 / emu.time_scale
    now = time.monotonic()
    for group_id, kept in list(tenant.deleted_memberships.items()):
        if now - kept.deleted_at >= horizon:
            tenant.deleted_memberships.pop(group_id, None)
            tenant.deleted_groups.pop(group_id, None)


def deleted_group(req: GraphRequest, emu: Emulator, group_id: str) -> dict[str, Any]:
    if not is_guid(group_id):
        raise bad_request(f"Invalid object identifier '{group_id}'.")
    purge_expired(req.tenant, emu)
    group = req.tenant.deleted_groups.get(group_id)
    if group is None:
        raise not_found(group_id)
    return group


def _view(group: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
    wanted = [n for n in select if n in GROUP_PROPERTIES] if select else None
    body = project(group, wanted, GROUP_DEFAULT_PROPERTIES)
    body["deletedDateTime"] = group.get("deletedDateTime")
    return {"@odata.type": "#microsoft.graph.group", **body}


def _select(req: GraphRequest) -> list[str] | None:
    raw = req.query.get("$select")
    return [name.strip() for name in raw.split(",") if name.strip()] if raw else None


@route("GET", "/directory/deletedItems/microsoft.graph.group", "read")
def list_deleted_groups(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_DELETED_GROUPS)
    purge_expired(req.tenant, emu)
    select = _select(req)
    values = [_view(req.tenant.deleted_groups[i], select) for i in sorted(req.tenant.deleted_groups)]
    context = f"{req.graph_base}/$metadata#directoryObjects/microsoft.graph.group"
    return GraphResponse(200, {"@odata.context": context, "value": values})


@route("GET", "/directory/deletedItems/{id}", "read")
def get_deleted_item(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_DELETED_GROUPS)
    group = deleted_group(req, emu, params["id"])
    return entity(req, "directoryObjects/$entity", _view(group, _select(req)))


@route("POST", "/directory/deletedItems/{id}/restore", "write")
def restore_deleted_item(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    """Bring the group back with its members and owners, under its old id, mail and alias."""
    req.require(WRITE_GROUP)
    tenant = req.tenant
    group = deleted_group(req, emu, params["id"])
    nickname = str(group.get("mailNickname") or "").lower()
    holder = tenant.nickname_index.get(nickname) if nickname else None
    if holder is not None and holder != group["id"]:
        raise GraphError(400, "Request_BadRequest", NICKNAME_TAKEN)
    kept = tenant.deleted_memberships.pop(group["id"])
    del tenant.deleted_groups[group["id"]]
    restored = {k: v for k, v in group.items() if k != "deletedDateTime"}
    tenant.put_group(restored)
    tenant.members[group["id"]] = kept.members
    tenant.owners[group["id"]] = kept.owners
    for member_id in kept.members.ordered():
        tenant.record(group["id"], "add", member_id)
    return entity(req, "directoryObjects/$entity", {**_view(restored), "deletedDateTime": None})


# ---- the /_emulator controls ------------------------------------------------------------------------


def _tenant_of(request: Request) -> Tenant:
    emu: Emulator = request.app.state.emulator
    ref = request.query_params.get("tenant")
    tenant = emu.directory.resolve(ref) if ref else emu.directory.default
    assert tenant is not None
    return tenant


async def deleted_items_control(request: Request) -> Response:
    """GET: the deleted groups still kept, with when they were deleted."""
    emu: Emulator = request.app.state.emulator
    tenant = _tenant_of(request)
    purge_expired(tenant, emu)
    items = [
        {
            "id": group_id,
            "deletedDateTime": group.get("deletedDateTime"),
            "displayName": group.get("displayName"),
        }
        for group_id, group in sorted(tenant.deleted_groups.items())
    ]
    return JSONResponse({"value": items})


async def age_deleted_item(request: Request) -> Response:
    """PUT {"age_days": N}: the item was deleted N days earlier than it was (past 30 days it is gone for good)."""
    import json

    emu: Emulator = request.app.state.emulator
    tenant = _tenant_of(request)
    group_id = request.path_params["group_id"]
    raw = await request.body()
    body = json.loads(raw) if raw else {}
    days = float(body.get("age_days", 0)) if isinstance(body, dict) else 0.0
    if days < 0:
        raise ValueError("age_days must be 0 or more")
    group = tenant.deleted_groups.get(group_id)
    kept = tenant.deleted_memberships.get(group_id)
    if group is None or kept is None:
        return JSONResponse({"error": f"no deleted group {group_id}"}, status_code=404)
    kept.deleted_at -= days * 86400 / emu.time_scale
    deleted = dt.datetime.strptime(str(group["deletedDateTime"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    group["deletedDateTime"] = (deleted - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    purge_expired(tenant, emu)
    return Response(status_code=204)
