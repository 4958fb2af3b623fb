"""Graph /groups: create, read, update, delete, members and owners, with the limits each group kind has."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from . import errors as e
from .errors import GraphError, bad_request, forbidden, not_found
from .listing import entity, page
from .odata import context_suffix, evaluate, parse_options, project, require_count_header
from .router import (
    CREATE_GROUP,
    READ_GROUP,
    ROLE_ASSIGNABLE_MEMBERS,
    WRITE_GROUP,
    WRITE_MEMBERS,
    GraphRequest,
    GraphResponse,
    route,
)
from .seeds import GROUP_DEFAULT_PROPERTIES, complete_group
from .state import Tenant, is_guid, iso_now
from .users import render_user
from .v1_properties import GROUP_V1

if TYPE_CHECKING:
    from .runtime import Emulator

GROUP_PROPERTIES = set(GROUP_V1)  # what $select and $filter accept: the v1.0 properties of group
GROUP_TYPE = "microsoft.graph.group"
MAX_LINKS = 20
NICKNAME_FORBIDDEN = set('@()\\[]";:<>,. ')
REQUIRED_ON_CREATE = ["displayName", "mailEnabled", "mailNickname", "securityEnabled"]
UPDATABLE = {
    "displayName",
    "description",
    "mailNickname",
    "visibility",
    "classification",
    "preferredLanguage",
    "theme",
    "membershipRule",
    "membershipRuleProcessingState",
    "groupTypes",
    "securityEnabled",
    "mailEnabled",
    "preferredDataLocation",
    "expirationDateTime",
    "resourceBehaviorOptions",
}
REF_PATH_RE = re.compile(
    r"^(?:directoryObjects|users|groups|servicePrincipals|devices|contacts)/(?P<id>[^/?#]+)$", re.IGNORECASE
)
GRAPH_HOSTS = (
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "microsoftgraph.chinacloudapi.cn",
)


# ---- helpers -----------------------------------------------------------------------------------


def is_unified(group: dict[str, Any]) -> bool:
    return "Unified" in (group.get("groupTypes") or [])


def is_mail_enabled_security_or_distribution(group: dict[str, Any]) -> bool:
    return bool(group.get("mailEnabled")) and not is_unified(group)


def lookup_group(
    req: GraphRequest, emu: Emulator, group_id: str, *, for_link_write: bool = False
) -> dict[str, Any]:
    if not is_guid(group_id):
        raise bad_request(e.INVALID_ID.format(id=group_id))
    group = req.tenant.groups.get(group_id)
    if group is None:
        raise not_found(group_id)
    if req.tenant.is_new_and_unreplicated(group_id, emu.replication_lag_seconds()):
        if for_link_write:
            raise bad_request(e.REPLICATION_LAG)
        raise not_found(group_id)
    return group


def read_group(req: GraphRequest, emu: Emulator, group_id: str) -> dict[str, Any]:
    """The group as a read sees it: before its last change while that change replicates."""
    group = lookup_group(req, emu, group_id)
    return req.tenant.visible_group(group_id, emu.replication_lag_seconds()) or group


def visible_groups(tenant: Tenant, emu: Emulator) -> list[dict[str, Any]]:
    lag = emu.replication_lag_seconds()
    if not tenant.stale_groups:
        return [tenant.groups[i] for i in sorted(tenant.groups)]
    seen = (tenant.visible_group(i, lag) for i in sorted(tenant.groups))
    return [group for group in seen if group is not None]


def check_membership_writable(req: GraphRequest, group: dict[str, Any]) -> None:
    """Group kinds whose membership Graph will not change, and the extra role role-assignable groups need."""
    if is_mail_enabled_security_or_distribution(group):
        # Microsoft's troubleshooting article documents 403 for mail-enabled security groups and lists.
        raise forbidden()
    if "DynamicMembership" in (group.get("groupTypes") or []):
        raise forbidden()
    if group.get("onPremisesSyncEnabled"):
        raise bad_request(e.ON_PREMISES_MASTERED)
    if group.get("isAssignableToRole") and ROLE_ASSIGNABLE_MEMBERS not in req.roles:
        raise forbidden()


def ref_object_id(reference: Any, req: GraphRequest, field: str = "members") -> str:
    """The object id in an @odata.bind or @odata.id URL, which must name a directory object on Graph itself."""
    invalid = bad_request(f"Invalid URL format specified in @odata.bind for {field}")
    if not isinstance(reference, str) or not reference:
        raise invalid
    # Graph's hosts (global and national clouds) or this emulator's own base, which stands in for them.
    bases = [f"https://{host}/{version}/" for host in GRAPH_HOSTS for version in ("v1.0", "beta")]
    bases.append(req.graph_base.rstrip("/") + "/")
    rest = next(
        (reference[len(base) :] for base in bases if reference.lower().startswith(base.lower())), None
    )
    found = REF_PATH_RE.match(rest) if rest is not None else None
    if found is None:
        raise invalid
    object_id = found.group("id")
    if not is_guid(object_id):
        raise bad_request(e.INVALID_ID.format(id=object_id))
    return object_id


def check_can_join(tenant: Tenant, group: dict[str, Any], object_id: str) -> str:
    """Validate one prospective member; returns its kind."""
    found = tenant.find_object(object_id)
    if found is None:
        raise not_found(object_id)
    kind, obj = found
    if is_unified(group):
        if kind != "user":
            raise bad_request(
                "Groups of type 'Unified' can only have members of type 'User'. "
                f"Object '{object_id}' is of type '{kind}'."
            )
        if obj.get("userType") == "Guest" and not tenant.allow_guests_in_groups:
            raise GraphError(403, "Authorization_RequestDenied", e.GUEST_BLOCKED)
    return kind


def render_directory_object(
    tenant: Tenant, object_id: str, select: list[str] | None, typed: bool
) -> dict[str, Any]:
    user = tenant.users.get(object_id)
    if user is not None:
        body = render_user(user, select)
        return {"@odata.type": "#microsoft.graph.user", **body} if typed else body
    group = tenant.groups.get(object_id)
    if group is not None:
        body = project(
            group, [n for n in select if n in GROUP_PROPERTIES] if select else None, GROUP_DEFAULT_PROPERTIES
        )
        return {"@odata.type": "#microsoft.graph.group", **body} if typed else body
    body = {"id": object_id}
    return {"@odata.type": "#microsoft.graph.servicePrincipal", **body} if typed else body


def validate_nickname(value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 64 or not value.isascii():
        raise bad_request("Invalid value specified for property 'mailNickname' of resource 'Group'.")
    if any(ch in NICKNAME_FORBIDDEN for ch in value) or any(ord(ch) < 32 for ch in value):
        raise bad_request("Invalid value specified for property 'mailNickname' of resource 'Group'.")


def group_entity(req: GraphRequest, group: dict[str, Any], select: list[str] | None) -> GraphResponse:
    context = context_suffix("groups", select) + "/$entity"
    return entity(req, context, project(group, select, GROUP_DEFAULT_PROPERTIES))


# ---- collection --------------------------------------------------------------------------------


@route("GET", "/groups", "read")
def list_groups(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_GROUP)
    opts = parse_options(req.query, req.headers, allowed=GROUP_PROPERTIES, type_name=GROUP_TYPE)
    groups = visible_groups(req.tenant, emu)
    if opts.filter is not None:
        groups = [g for g in groups if evaluate(opts.filter, g)]
    if opts.search is not None:
        groups = [g for g in groups if opts.search(g)]
    if opts.orderby is not None:
        prop, descending = opts.orderby
        groups.sort(key=lambda g: str(g.get(prop) or "").casefold(), reverse=descending)
    return page(
        req,
        opts,
        groups,
        lambda g: project(g, opts.select, GROUP_DEFAULT_PROPERTIES),
        context_suffix("groups", opts.select),
    )


@route("GET", "/groups/$count", "read")
def count_groups(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_GROUP)
    require_count_header(req.headers)
    return GraphResponse(200, str(len(visible_groups(req.tenant, emu))))


@route("POST", "/groups", "write")
def create_group(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(CREATE_GROUP)
    candidate = new_group(req, req.body, emu.replication_lag_seconds())
    odata_id = group_odata_id(req.tenant, candidate["id"])
    out = {
        "@odata.context": f"{req.graph_base}/$metadata#groups/$entity",
        "@odata.id": odata_id,
        **project(candidate, None, GROUP_DEFAULT_PROPERTIES),
    }
    return GraphResponse(201, out, {"Location": odata_id})


def group_odata_id(tenant: Tenant, group_id: str) -> str:
    return f"https://graph.microsoft.com/v2/{tenant.id}/directoryObjects/{group_id}/Microsoft.DirectoryServices.Group"


def new_group(req: GraphRequest, body: Any, lag: float) -> dict[str, Any]:
    """Validate a group body as POST /groups does and store the group; the caller has checked permissions."""
    if not isinstance(body, dict):
        raise bad_request("Empty Payload. JSON content expected.")
    for name in REQUIRED_ON_CREATE:
        if body.get(name) is None or body.get(name) == "":
            raise bad_request(f"A value is required for property '{name}' of resource 'Group'.")
    display_name = body["displayName"]
    if not isinstance(display_name, str) or len(display_name) > 256:
        raise bad_request("Invalid value specified for property 'displayName' of resource 'Group'.")
    for flag in ("mailEnabled", "securityEnabled"):
        if not isinstance(body[flag], bool):
            raise bad_request(f"Invalid value specified for property '{flag}' of resource 'Group'.")
    validate_nickname(body["mailNickname"])
    group_types = body.get("groupTypes") or []
    if not isinstance(group_types, list) or any(
        t not in ("Unified", "DynamicMembership") for t in group_types
    ):
        raise bad_request("Invalid value specified for property 'groupTypes' of resource 'Group'.")
    unified = "Unified" in group_types
    if body["mailEnabled"] and not unified:
        raise bad_request(e.MAIL_ENABLED_CREATE)
    if unified and not body["mailEnabled"]:
        raise bad_request("Invalid value specified for property 'mailEnabled' of resource 'Group'.")
    visibility = body.get("visibility")
    if visibility is not None and visibility not in ("Public", "Private", "HiddenMembership"):
        raise bad_request("Invalid value specified for property 'visibility' of resource 'Group'.")
    if body.get("isAssignableToRole"):
        if ROLE_ASSIGNABLE_MEMBERS not in req.roles:
            raise forbidden()
        if not body["securityEnabled"]:
            raise bad_request("Invalid value specified for property 'securityEnabled' of resource 'Group'.")
    if "DynamicMembership" in group_types and not body.get("membershipRule"):
        raise bad_request("Invalid value specified for property 'membershipRule' of resource 'Group'.")
    tenant = req.tenant
    if unified and body["mailNickname"].lower() in tenant.nickname_index:
        raise bad_request("Another object with the same value for property mailNickname already exists.")
    owner_refs = body.get("owners@odata.bind") or []
    member_refs = body.get("members@odata.bind") or []
    if not isinstance(owner_refs, list) or not isinstance(member_refs, list):
        raise bad_request("Invalid URL format specified in @odata.bind")
    if len(owner_refs) + len(member_refs) > MAX_LINKS:
        raise bad_request(e.TOO_MANY_LINKS)
    known = {
        k: v for k, v in body.items() if k in GROUP_PROPERTIES and k not in ("id", "mail", "proxyAddresses")
    }
    known["id"] = str(uuid.uuid4())
    if body.get("isAssignableToRole") and known.get("visibility") is None:
        known["visibility"] = "Private"  # role-assignable groups are always private
    candidate = complete_group(known, tenant.domain, created=iso_now())
    candidate["organizationId"] = tenant.id
    owner_ids = [ref_object_id(ref, req, "owners") for ref in owner_refs]
    member_ids = [ref_object_id(ref, req) for ref in member_refs]
    for owner_id in owner_ids:
        if tenant.find_object(owner_id) is None:
            raise not_found(owner_id)
    for member_id in member_ids:
        check_can_join(tenant, candidate, member_id)
    tenant.put_group(candidate)
    tenant.note_group_change(candidate["id"], lag, new=True)
    tenant.note_members_change(candidate["id"], lag)
    for owner_id in owner_ids:
        tenant.owners[candidate["id"]].add(owner_id)
    for member_id in member_ids:
        tenant.add_member(candidate["id"], member_id)
    return candidate


# ---- single group ------------------------------------------------------------------------------


@route("GET", "/groups/{id}", "read")
def get_group(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_GROUP)
    opts = parse_options(req.query, req.headers, allowed=GROUP_PROPERTIES, type_name=GROUP_TYPE)
    group = read_group(req, emu, params["id"])
    return group_entity(req, group, opts.select)


@route("PATCH", "/groups/{id}", "write")
def update_group(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    body = req.body
    if not isinstance(body, dict):
        raise bad_request("Empty Payload. JSON content expected.")
    member_refs = body.get("members@odata.bind")
    owner_refs = body.get("owners@odata.bind")
    odata_type = body.get("@odata.type")
    if odata_type is not None and str(odata_type).lower() != "#" + GROUP_TYPE.lower():
        raise bad_request(f"Invalid value '{odata_type}' for '@odata.type': this resource is a group.")
    # msgraph-sdk's Group() always names its type; the annotation describes the body and changes nothing.
    properties = {k: v for k, v in body.items() if not k.endswith("@odata.bind") and k != "@odata.type"}
    req.require(WRITE_GROUP if properties or owner_refs else WRITE_MEMBERS)
    group = lookup_group(req, emu, params["id"], for_link_write=member_refs is not None)
    tenant = req.tenant
    links = len(member_refs or []) + len(owner_refs or [])
    if links > MAX_LINKS:
        raise bad_request(e.TOO_MANY_LINKS)
    if properties:
        if is_mail_enabled_security_or_distribution(group):
            raise bad_request(e.MAIL_ENABLED_UPDATE)
        if group.get("onPremisesSyncEnabled"):
            raise bad_request(e.ON_PREMISES_MASTERED)
        for name, value in properties.items():
            if name not in UPDATABLE:
                raise bad_request(f"Property '{name}' is read-only and cannot be set.")
            if name == "mailNickname":
                validate_nickname(value)
                holder = tenant.nickname_index.get(value.lower())
                if is_unified(group) and holder not in (None, group["id"]):
                    raise bad_request(
                        "Another object with the same value for property mailNickname already exists."
                    )
            if name == "displayName" and (not isinstance(value, str) or not value or len(value) > 256):
                raise bad_request("Invalid value specified for property 'displayName' of resource 'Group'.")
    new_members: list[str] = []
    if member_refs is not None:
        if not isinstance(member_refs, list):
            raise bad_request("Invalid URL format specified in @odata.bind for members")
        check_membership_writable(req, group)
        members = tenant.members[group["id"]]
        # All or nothing: any missing or existing member fails the whole request before anything changes.
        for ref in member_refs:
            object_id = ref_object_id(ref, req)
            check_can_join(tenant, group, object_id)
            if object_id in members or object_id in new_members:
                raise bad_request(e.ALREADY_MEMBER)
            new_members.append(object_id)
    new_owners: list[str] = []
    for ref in owner_refs or []:
        object_id = ref_object_id(ref, req, "owners")
        if tenant.find_object(object_id) is None:
            raise not_found(object_id)
        if object_id in tenant.owners[group["id"]]:
            raise bad_request(e.ALREADY_OWNER)
        new_owners.append(object_id)
    lag = emu.replication_lag_seconds()
    if properties:
        tenant.note_group_change(group["id"], lag)
        updated = {**group, **properties}
        if "mailNickname" in properties and updated.get("mailEnabled"):
            updated["mail"] = f"{properties['mailNickname']}@{tenant.domain}"
            updated["proxyAddresses"] = [f"SMTP:{updated['mail']}"]
        tenant.put_group(updated)
    if new_members:
        tenant.note_members_change(group["id"], lag)
    for object_id in new_members:
        tenant.add_member(group["id"], object_id)
    for object_id in new_owners:
        tenant.owners[group["id"]].add(object_id)
    return GraphResponse(204)


@route("DELETE", "/groups/{id}", "write")
def delete_group(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(WRITE_GROUP)
    group = lookup_group(req, emu, params["id"])
    if is_mail_enabled_security_or_distribution(group):
        raise bad_request("Cannot Delete a mail-enabled security groups and or distribution list.")
    if group.get("onPremisesSyncEnabled"):
        raise bad_request(e.ON_PREMISES_MASTERED)
    req.tenant.remove_group(group["id"])
    return GraphResponse(204)
