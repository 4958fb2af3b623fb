"""Graph /groups/{id}/members and /owners: list (with casts and $count), references, add and remove, with the
limits each group kind puts on its membership."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from . import errors as e
from .errors import bad_request, not_found
from .groups import (
    GROUP_PROPERTIES,
    check_can_join,
    check_membership_writable,
    lookup_group,
    ref_object_id,
    render_directory_object,
)
from .listing import next_link, page
from .odata import context_suffix, evaluate, parse_options, require_count_header
from .router import (
    READ_GROUP,
    WRITE_GROUP,
    WRITE_MEMBERS,
    GraphRequest,
    GraphResponse,
    route,
)
from .state import MemberSet, Tenant, is_guid
from .users import USER_PROPERTIES

if TYPE_CHECKING:
    from .runtime import Emulator


# ---- members -----------------------------------------------------------------------------------


def _list_links(
    req: GraphRequest, emu: Emulator, group_id: str, relation: str, cast: str | None
) -> GraphResponse:
    req.require(READ_GROUP)
    group = lookup_group(req, emu, group_id)
    tenant = req.tenant
    if relation == "members":
        links = tenant.visible_members(group["id"], emu.replication_lag_seconds())
    else:
        links = tenant.owners[group["id"]]
    return list_directory_objects(req, links, cast)


def list_directory_objects(req: GraphRequest, links: MemberSet, cast: str | None) -> GraphResponse:
    """One page of a directoryObject collection (members, owners), optionally cast to users or groups."""
    allowed = USER_PROPERTIES | GROUP_PROPERTIES
    opts = parse_options(
        req.query,
        req.headers,
        allowed=allowed,
        type_name="microsoft.graph.directoryObject",
        filter_needs_advanced=True,
    )
    tenant = req.tenant
    ordered = links.ordered()
    entity_set = "users" if cast == "user" else ("groups" if cast == "group" else "directoryObjects")
    context = context_suffix(entity_set, opts.select)
    typed = cast is None
    simple = opts.filter is None and opts.search is None and opts.orderby is None and not opts.count
    if simple and cast is None:
        # Seek by the last id returned: a page costs O(page + log n), whatever the group's size.
        after = (opts.skiptoken or {}).get("a")
        start = bisect.bisect_right(ordered, after) if after else 0
        chunk = ordered[start : start + opts.top]
        body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#{context}"}
        if start + opts.top < len(ordered):
            body["@odata.nextLink"] = next_link(req, {"a": chunk[-1]})
        body["value"] = [render_directory_object(tenant, i, opts.select, typed) for i in chunk]
        return GraphResponse(200, body)
    objects: list[dict[str, Any]] = []
    for object_id in ordered:
        obj = tenant.users.get(object_id)
        if obj is None and cast != "user":
            obj = tenant.groups.get(object_id)
        if obj is None or (cast == "group" and object_id not in tenant.groups):
            continue
        objects.append(obj)
    if opts.filter is not None:
        objects = [o for o in objects if evaluate(opts.filter, o)]
    if opts.search is not None:
        objects = [o for o in objects if opts.search(o)]
    if opts.orderby is not None:
        prop, descending = opts.orderby
        objects.sort(key=lambda o: str(o.get(prop) or "").casefold(), reverse=descending)
    return page(
        req, opts, objects, lambda o: render_directory_object(tenant, o["id"], opts.select, typed), context
    )


def _count_links(req: GraphRequest, emu: Emulator, group_id: str, cast: str | None) -> GraphResponse:
    req.require(READ_GROUP)
    require_count_header(req.headers)
    group = lookup_group(req, emu, group_id)
    members = req.tenant.visible_members(group["id"], emu.replication_lag_seconds())
    return count_directory_objects(req, members, cast)


def count_directory_objects(req: GraphRequest, members: MemberSet, cast: str | None) -> GraphResponse:
    if cast == "user":
        total = sum(1 for i in members.ids() if i in req.tenant.users)
    elif cast == "group":
        total = sum(1 for i in members.ids() if i in req.tenant.groups)
    else:
        total = len(members)
    return GraphResponse(200, str(total))


@route("GET", "/groups/{id}/members", "members")
def list_members(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _list_links(req, emu, params["id"], "members", None)


@route("GET", "/groups/{id}/members/microsoft.graph.user", "members")
def list_user_members(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _list_links(req, emu, params["id"], "members", "user")


@route("GET", "/groups/{id}/members/microsoft.graph.group", "members")
def list_group_members(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _list_links(req, emu, params["id"], "members", "group")


@route("GET", "/groups/{id}/members/$count", "members")
def count_members(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _count_links(req, emu, params["id"], None)


@route("GET", "/groups/{id}/members/microsoft.graph.user/$count", "members")
def count_user_members(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _count_links(req, emu, params["id"], "user")


def _list_refs(req: GraphRequest, emu: Emulator, group_id: str, relation: str) -> GraphResponse:
    """GET .../members/$ref: the references alone, one @odata.id per object, paged like the objects."""
    req.require(READ_GROUP)
    opts = parse_options(req.query, req.headers, allowed=set(), type_name="microsoft.graph.directoryObject")
    group = lookup_group(req, emu, group_id)
    tenant = req.tenant
    # Member references are read like the members themselves: after the replication lag.
    links = (
        tenant.visible_members(group["id"], emu.replication_lag_seconds())
        if relation == "members"
        else tenant.owners[group["id"]]
    )
    ordered = links.ordered()
    after = (opts.skiptoken or {}).get("a")
    start = bisect.bisect_right(ordered, after) if after else 0
    chunk = ordered[start : start + opts.top]
    body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#directoryObjects"}
    if start + opts.top < len(ordered):
        body["@odata.nextLink"] = next_link(req, {"a": chunk[-1]})
    body["value"] = [{"@odata.id": _object_uri(tenant, object_id)} for object_id in chunk]
    return GraphResponse(200, body)


def _object_uri(tenant: Tenant, object_id: str) -> str:
    kind = (
        "User"
        if object_id in tenant.users
        else ("Group" if object_id in tenant.groups else "ServicePrincipal")
    )
    return f"https://graph.microsoft.com/v2/{tenant.id}/directoryObjects/{object_id}/Microsoft.DirectoryServices.{kind}"


@route("GET", "/groups/{id}/members/$ref", "members")
def list_member_refs(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _list_refs(req, emu, params["id"], "members")


@route("GET", "/groups/{id}/owners/$ref", "read")
def list_owner_refs(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _list_refs(req, emu, params["id"], "owners")


@route("POST", "/groups/{id}/members/$ref", "write")
def add_member(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(WRITE_MEMBERS)
    group = lookup_group(req, emu, params["id"], for_link_write=True)
    check_membership_writable(req, group)
    body = req.body
    if not isinstance(body, dict) or "@odata.id" not in body:
        raise bad_request("Invalid request body: '@odata.id' is required.")
    object_id = ref_object_id(body["@odata.id"], req)
    check_can_join(req.tenant, group, object_id)
    if object_id in req.tenant.members[group["id"]]:
        raise bad_request(e.ALREADY_MEMBER)
    req.tenant.note_members_change(group["id"], emu.replication_lag_seconds())
    req.tenant.add_member(group["id"], object_id)
    return GraphResponse(204)


@route("DELETE", "/groups/{id}/members/{member}/$ref", "write")
def remove_member(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(WRITE_MEMBERS)
    group = lookup_group(req, emu, params["id"])
    check_membership_writable(req, group)
    member_id = params["member"]
    if not is_guid(member_id):
        raise bad_request(e.INVALID_ID.format(id=member_id))
    if member_id not in req.tenant.members[group["id"]]:
        raise not_found(member_id)
    req.tenant.note_members_change(group["id"], emu.replication_lag_seconds())
    req.tenant.remove_member(group["id"], member_id)
    return GraphResponse(204)


# ---- owners ------------------------------------------------------------------------------------


@route("GET", "/groups/{id}/owners", "read")
def list_owners(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    return _list_links(req, emu, params["id"], "owners", None)


@route("POST", "/groups/{id}/owners/$ref", "write")
def add_owner(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(WRITE_GROUP)
    group = lookup_group(req, emu, params["id"], for_link_write=True)
    body = req.body
    if not isinstance(body, dict) or "@odata.id" not in body:
        raise bad_request("Invalid request body: '@odata.id' is required.")
    object_id = ref_object_id(body["@odata.id"], req)
    if req.tenant.find_object(object_id) is None:
        raise not_found(object_id)
    if object_id in req.tenant.owners[group["id"]]:
        raise bad_request(e.ALREADY_OWNER)
    req.tenant.owners[group["id"]].add(object_id)
    return GraphResponse(204)


@route("DELETE", "/groups/{id}/owners/{owner}/$ref", "write")
def remove_owner(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(WRITE_GROUP)
    group = lookup_group(req, emu, params["id"])
    owners = req.tenant.owners[group["id"]]
    if params["owner"] not in owners:
        raise not_found(params["owner"])
    owners.discard(params["owner"])
    return GraphResponse(204)
