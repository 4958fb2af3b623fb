"""Graph /users: list with $filter (eq, in, startswith, proxyAddresses/any), get by id or UPN, create."""

from __future__ import annotations

import bisect
import time
import uuid
from typing import TYPE_CHECKING, Any

from .errors import bad_request, not_found
from .listing import entity, page
from .odata import Node, QueryOptions, context_suffix, parse_options, project, require_count_header
from .router import READ_USERS, WRITE_USERS, GraphRequest, GraphResponse, route
from .seeds import USER_DEFAULT_PROPERTIES, complete_user
from .state import Tenant
from .v1_properties import USER_V1

if TYPE_CHECKING:
    from .runtime import Emulator

USER_PROPERTIES = set(USER_V1)
USER_TYPE = "microsoft.graph.user"
REQUIRED_ON_CREATE = ["accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile"]


def render_user(user: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    return project(user, select, USER_DEFAULT_PROPERTIES)


def _index_candidates(node: Node, tenant: Tenant) -> set[str] | None:
    """Ids that can satisfy the filter, straight from an index; None when the filter needs a scan."""
    if node.kind == "and":
        sets = [s for s in (_index_candidates(child, tenant) for child in node.children) if s is not None]
        return set.intersection(*sets) if sets else None
    if node.kind == "or":
        found: set[str] = set()
        for child in node.children:
            part = _index_candidates(child, tenant)
            if part is None:
                return None
            found |= part
        return found
    values: list[Any] = []
    if node.kind == "in" or (node.kind == "cmp" and node.op == "eq"):
        values = node.values
    elif node.kind == "any" and node.op == "eq" and node.prop == "proxyAddresses":
        out: set[str] = set()
        for value in node.values:
            out |= tenant.proxy_index.get(str(value).lower(), set())
        return out
    else:
        return None
    if node.prop == "id":
        return {str(v) for v in values if str(v) in tenant.users}
    index = {"mail": tenant.mail_index, "userPrincipalName": tenant.upn_index}.get(node.prop)
    if index is None:
        return None
    return {index[str(v).lower()] for v in values if isinstance(v, str) and v.lower() in index}


def matching_users(tenant: Tenant, opts: QueryOptions) -> list[dict[str, Any]]:
    ids: list[str] | None = None
    if opts.filter is not None:
        candidates = _index_candidates(opts.filter, tenant)
        if candidates is not None:
            ids = sorted(candidates)
    source = ids if ids is not None else tenant.ordered_user_ids()
    users = [tenant.users[i] for i in source]
    if opts.filter is not None:
        from .odata import evaluate

        users = [u for u in users if evaluate(opts.filter, u)]
    if opts.search is not None:
        users = [u for u in users if opts.search(u)]
    if opts.orderby is not None:
        prop, descending = opts.orderby
        users.sort(key=lambda u: (u.get(prop) is None, str(u.get(prop) or "").casefold()), reverse=descending)
    return users


@route("GET", "/users", "users")
def list_users(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_USERS)
    opts = parse_options(req.query, req.headers, allowed=USER_PROPERTIES, type_name=USER_TYPE)
    context = context_suffix("users", opts.select)
    tenant = req.tenant
    if opts.filter is None and opts.search is None and opts.orderby is None and not opts.count:
        # Plain listing: seek by the last id so deep pages stay cheap on large tenants.
        ordered = tenant.ordered_user_ids()
        after = (opts.skiptoken or {}).get("a")
        start = bisect.bisect_right(ordered, after) if after else 0
        chunk = ordered[start : start + opts.top]
        body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#{context}"}
        if start + opts.top < len(ordered):
            from .listing import next_link

            body["@odata.nextLink"] = next_link(req, {"a": chunk[-1]})
        hidden = tenant.unreplicated_users(emu.replication_lag_seconds())
        body["value"] = [render_user(tenant.users[i], opts.select) for i in chunk if i not in hidden]
        return GraphResponse(200, body)
    users = matching_users(tenant, opts)
    hidden = tenant.unreplicated_users(emu.replication_lag_seconds())
    if hidden:
        users = [u for u in users if u["id"] not in hidden]
    return page(req, opts, users, lambda u: render_user(u, opts.select), context)


@route("GET", "/users/$count", "users")
def count_users(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_USERS)
    require_count_header(req.headers)
    hidden = req.tenant.unreplicated_users(emu.replication_lag_seconds())
    return GraphResponse(200, str(len(req.tenant.users) - len(hidden)))


@route("GET", "/users/{id}", "users")
def get_user(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_USERS)
    opts = parse_options(req.query, req.headers, allowed=USER_PROPERTIES, type_name=USER_TYPE)
    user = req.tenant.find_user(params["id"])
    if user is None or user["id"] in req.tenant.unreplicated_users(emu.replication_lag_seconds()):
        raise not_found(params["id"])
    context = context_suffix("users", opts.select) + "/$entity"
    return entity(req, context, render_user(user, opts.select))


@route("POST", "/users", "write")
def create_user(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(WRITE_USERS)
    body = req.body
    if not isinstance(body, dict):
        raise bad_request("Empty Payload. JSON content expected.")
    for name in REQUIRED_ON_CREATE:
        if body.get(name) in (None, ""):
            raise bad_request(f"A value is required for property '{name}' of resource 'User'.")
    upn = str(body["userPrincipalName"])
    if "@" not in upn:
        raise bad_request("Invalid value specified for property 'userPrincipalName' of resource 'User'.")
    if req.tenant.find_user(upn) is not None:
        raise bad_request("Another object with the same value for property userPrincipalName already exists.")
    fields = {k: v for k, v in body.items() if k in USER_PROPERTIES}
    fields["id"] = str(uuid.uuid4())
    user = complete_user(fields, req.tenant.domain)
    req.tenant.put_user(user)
    if emu.replication_lag_seconds() > 0:
        req.tenant.new_users[user["id"]] = time.monotonic()
    return GraphResponse(
        201, {"@odata.context": f"{req.graph_base}/$metadata#users/$entity", **render_user(user, None)}
    )
