"""Graph /directory/administrativeUnits: list and read units, list their members, add members, create a group inside.

Permissions follow Microsoft's pages for each operation: reading needs AdministrativeUnit.Read.All (or a broader
directory permission); adding an existing object needs AdministrativeUnit.ReadWrite.All; creating a group inside a
unit needs Group.Create or Group.ReadWrite.All together with AdministrativeUnit.Read.All (or ReadWrite.All), or
Directory.ReadWrite.All alone, and the calling app's service principal must also hold the Groups Administrator (or
User Administrator) directory role scoped to that unit: without it Microsoft answers 403 Authorization_RequestDenied
whatever the permissions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors as e
from .errors import bad_request, forbidden, not_found
from .groups import GROUP_PROPERTIES, group_odata_id, new_group, ref_object_id, render_directory_object
from .listing import entity, page
from .memberships import count_directory_objects, list_directory_objects
from .odata import context_suffix, evaluate, parse_options, project, require_count_header
from .router import (
    CREATE_GROUP_IN_UNIT,
    READ_UNITS,
    WRITE_UNIT_MEMBERS,
    GraphRequest,
    GraphResponse,
    route,
)
from .seeds import GROUP_DEFAULT_PROPERTIES, GROUPS_ADMINISTRATOR, UNIT_DEFAULT_PROPERTIES, USER_ADMINISTRATOR
from .state import is_guid
from .users import USER_PROPERTIES

if TYPE_CHECKING:
    from .runtime import Emulator

UNIT_PROPERTIES = set(UNIT_DEFAULT_PROPERTIES)
UNIT_TYPE = "microsoft.graph.administrativeUnit"
UNITS = "/directory/administrativeUnits"
GROUP_ODATA_TYPE = "#microsoft.graph.group"
# The unit-scoped roles under which an app may create a group inside the unit.
UNIT_GROUP_CREATOR_ROLES = frozenset({GROUPS_ADMINISTRATOR, USER_ADMINISTRATOR})


def lookup_unit(req: GraphRequest, unit_id: str) -> dict[str, Any]:
    if not is_guid(unit_id):
        raise bad_request(e.INVALID_ID.format(id=unit_id))
    unit = req.tenant.units.get(unit_id)
    if unit is None:
        raise not_found(unit_id)
    return unit


@route("GET", UNITS, "read")
def list_units(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_UNITS)
    opts = parse_options(req.query, req.headers, allowed=UNIT_PROPERTIES, type_name=UNIT_TYPE)
    units = [req.tenant.units[i] for i in sorted(req.tenant.units)]
    if opts.filter is not None:
        units = [u for u in units if evaluate(opts.filter, u)]
    if opts.search is not None:
        units = [u for u in units if opts.search(u)]
    return page(
        req,
        opts,
        units,
        lambda u: project(u, opts.select, UNIT_DEFAULT_PROPERTIES),
        context_suffix("directory/administrativeUnits", opts.select),
    )


@route("GET", UNITS + "/{id}", "read")
def get_unit(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_UNITS)
    opts = parse_options(req.query, req.headers, allowed=UNIT_PROPERTIES, type_name=UNIT_TYPE)
    unit = lookup_unit(req, params["id"])
    context = context_suffix("directory/administrativeUnits", opts.select) + "/$entity"
    return entity(req, context, project(unit, opts.select, UNIT_DEFAULT_PROPERTIES))


def _members(req: GraphRequest, unit_id: str, cast: str | None) -> GraphResponse:
    req.require(READ_UNITS)
    unit = lookup_unit(req, unit_id)
    return list_directory_objects(req, req.tenant.unit_members[unit["id"]], cast)


@route("GET", UNITS + "/{id}/members", "members")
def list_unit_members(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _members(req, params["id"], None)


@route("GET", UNITS + "/{id}/members/microsoft.graph.group", "members")
def list_unit_groups(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _members(req, params["id"], "group")


@route("GET", UNITS + "/{id}/members/microsoft.graph.user", "members")
def list_unit_users(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _members(req, params["id"], "user")


@route("GET", UNITS + "/{id}/members/{member}", "read")
def get_unit_member(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    """One member of the unit (a user or a group, with its @odata.type); 404 when the object is not in the unit."""
    req.require(READ_UNITS)
    unit = lookup_unit(req, params["id"])
    member_id = params["member"]
    if not is_guid(member_id):
        raise bad_request(e.INVALID_ID.format(id=member_id))
    if member_id not in req.tenant.unit_members[unit["id"]]:
        raise not_found(member_id)
    opts = parse_options(
        req.query,
        req.headers,
        allowed=USER_PROPERTIES | GROUP_PROPERTIES,
        type_name="microsoft.graph.directoryObject",
    )
    body = render_directory_object(req.tenant, member_id, opts.select, typed=True)
    return entity(req, context_suffix("directoryObjects", opts.select) + "/$entity", body)


@route("GET", UNITS + "/{id}/members/$count", "members")
def count_unit_members(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_UNITS)
    require_count_header(req.headers)
    unit = lookup_unit(req, params["id"])
    return count_directory_objects(req, req.tenant.unit_members[unit["id"]], None)


@route("GET", UNITS + "/{id}/members/microsoft.graph.group/$count", "members")
def count_unit_groups(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_UNITS)
    require_count_header(req.headers)
    unit = lookup_unit(req, params["id"])
    return count_directory_objects(req, req.tenant.unit_members[unit["id"]], "group")


@route("POST", UNITS + "/{id}/members", "write")
def create_in_unit(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    """Create a group inside the unit: the body is a full group with "@odata.type": "#microsoft.graph.group"."""
    creates, reads_units = CREATE_GROUP_IN_UNIT
    if "Directory.ReadWrite.All" not in req.roles and not (req.roles & creates and req.roles & reads_units):
        raise forbidden()
    unit = lookup_unit(req, params["id"])
    if not req.tenant.unit_roles_of(unit["id"], req.app.client_id) & UNIT_GROUP_CREATOR_ROLES:
        raise forbidden()
    body = req.body
    if not isinstance(body, dict):
        raise bad_request("Empty Payload. JSON content expected.")
    odata_type = str(body.get("@odata.type") or "")
    if odata_type.lower() != GROUP_ODATA_TYPE:
        raise bad_request(
            "Only a group can be created inside an administrative unit: the body needs "
            f'"@odata.type": "{GROUP_ODATA_TYPE}"; add an existing object with POST .../members/$ref.'
        )
    group = new_group(
        req, {k: v for k, v in body.items() if k != "@odata.type"}, emu.replication_lag_seconds()
    )
    req.tenant.unit_members[unit["id"]].add(group["id"])
    odata_id = group_odata_id(req.tenant, group["id"])
    out = {
        "@odata.context": f"{req.graph_base}/$metadata#directoryObjects/$entity",
        "@odata.type": GROUP_ODATA_TYPE,
        **project(group, None, GROUP_DEFAULT_PROPERTIES),
    }
    return GraphResponse(201, out, {"Location": odata_id})


@route("POST", UNITS + "/{id}/members/$ref", "write")
def add_unit_member(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(WRITE_UNIT_MEMBERS)
    unit = lookup_unit(req, params["id"])
    body = req.body
    if not isinstance(body, dict) or "@odata.id" not in body:
        raise bad_request("Invalid request body: '@odata.id' is required.")
    object_id = ref_object_id(body["@odata.id"], req)
    if object_id not in req.tenant.users and object_id not in req.tenant.groups:
        raise not_found(object_id)
    members = req.tenant.unit_members[unit["id"]]
    if object_id in members:
        raise bad_request(e.ALREADY_MEMBER)
    members.add(object_id)
    return GraphResponse(204)


@route("DELETE", UNITS + "/{id}/members/{member}/$ref", "write")
def remove_unit_member(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(WRITE_UNIT_MEMBERS)
    unit = lookup_unit(req, params["id"])
    members = req.tenant.unit_members[unit["id"]]
    if params["member"] not in members:
        raise not_found(params["member"])
    members.discard(params["member"])
    return GraphResponse(204)
