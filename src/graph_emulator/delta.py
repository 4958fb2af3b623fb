"""GET /groups/delta: a full first round, then rounds carrying only what changed since the delta link."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from .errors import bad_request
from .odata import decode_skiptoken, encode_skiptoken, parse_filter, parse_select
from .router import READ_GROUP, GraphRequest, GraphResponse, route

if TYPE_CHECKING:
    from .runtime import Emulator
    from .state import Tenant

DELTA_DEFAULT = [
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
    "visibility",
]
GROUPS_PER_PAGE = 100
MEMBERS_PER_ENTRY = 500
MAX_FILTER_IDS = 50
MAX_ROUNDS_KEPT = 200


def _filter_ids(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    node = parse_filter(raw)
    ids: list[str] = []
    for item in node.walk():
        if item.kind == "or":
            continue
        if item.kind == "cmp" and item.op == "eq" and item.prop == "id":
            ids.append(str(item.values[0]))
        elif item.kind == "in" and item.prop == "id":
            ids.extend(str(v) for v in item.values)
        else:
            raise bad_request(
                "Unsupported filter for delta: only 'id eq' clauses joined by 'or' are allowed."
            )
    if len(ids) > MAX_FILTER_IDS:
        raise bad_request(f"The number of filtered objects exceeds the maximum of {MAX_FILTER_IDS}.")
    return ids


def _group_view(group: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    names = [n for n in (select or DELTA_DEFAULT) if n != "members"]
    view = {name: group.get(name) for name in names}
    view["id"] = group["id"]
    return view


def _member_ref(tenant: Tenant, object_id: str, removed: bool = False) -> dict[str, Any]:
    kind = "group" if object_id in tenant.groups else "user"
    ref: dict[str, Any] = {"@odata.type": f"#microsoft.graph.{kind}", "id": object_id}
    if removed:
        ref["@removed"] = {"reason": "deleted"}
    return ref


def _entries_with_members(view: dict[str, Any], refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not refs:
        return [view]
    # A large group spans several entries, each repeating the group object with a slice of members@delta.
    return [
        {**view, "members@delta": refs[start : start + MEMBERS_PER_ENTRY]}
        for start in range(0, len(refs), MEMBERS_PER_ENTRY)
    ]


def _replicated_until(tenant: Tenant, since: int, lagging: set[str]) -> int:
    """The last change sequence number a round may include: just before the first change still replicating."""
    if lagging:
        for event in tenant.changes:
            if event.seq > since and event.group_id in lagging:
                return event.seq - 1
    return tenant.next_seq - 1


def _initial(
    tenant: Tenant, ids: list[str] | None, select: list[str] | None, lag: float
) -> list[dict[str, Any]]:
    """Every group as readers see it now (a new one still replicating comes in a later round)."""
    with_members = select is None or "members" in select
    entries: list[dict[str, Any]] = []
    for group_id in sorted(ids if ids is not None else tenant.groups):
        group = tenant.visible_group(group_id, lag) if group_id in tenant.groups else None
        if group is None:
            continue
        members = tenant.visible_members(group_id, lag)
        refs = [_member_ref(tenant, m) for m in members.ordered()] if with_members else []
        entries.extend(_entries_with_members(_group_view(group, select), refs))
    return entries


def _changes(
    tenant: Tenant, since: int, ids: list[str] | None, select: list[str] | None, upto: int
) -> list[dict[str, Any]]:
    with_members = select is None or "members" in select
    wanted = set(ids) if ids is not None else None
    touched: dict[str, dict[str, str]] = {}  # group -> member -> last event kind
    changed: list[str] = []
    for event in tenant.changes:
        if event.seq > upto:
            break
        if event.seq <= since or (wanted is not None and event.group_id not in wanted):
            continue
        if event.group_id not in touched:
            touched[event.group_id] = {}
            changed.append(event.group_id)
        if event.member_id is not None:
            touched[event.group_id][event.member_id] = event.kind
    entries: list[dict[str, Any]] = []
    for group_id in changed:
        group = tenant.groups.get(group_id)
        if group is None:
            reason = "changed" if group_id in tenant.deleted_groups else "deleted"
            entries.append({"id": group_id, "@removed": {"reason": reason}})
            continue
        refs = []
        if with_members:
            for member_id, kind in touched[group_id].items():
                refs.append(_member_ref(tenant, member_id, removed=kind == "remove"))
        entries.extend(_entries_with_members(_group_view(group, select), refs))
    return entries


@route("GET", "/groups/delta", "read")
def groups_delta(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_GROUP)
    tenant = req.tenant
    if "$skiptoken" in req.query:
        state = decode_skiptoken(req.query["$skiptoken"])
        round_entries = emu.delta_rounds.get(str(state.get("r")))
        if round_entries is None:
            raise bad_request("The skip token is no longer valid; start a new delta round.")
        return _page(req, emu, round_entries, str(state["r"]), int(state.get("p", 0)), state)
    select = parse_select(req.query.get("$select"), _delta_properties(), "microsoft.graph.group")
    # Query option names are case-insensitive: Microsoft documents $deltatoken, the SDKs send $deltaToken.
    delta_token = next((v for k, v in req.query.items() if k.lower() == "$deltatoken"), None)
    if delta_token is not None and delta_token.lower() == "latest":
        # No data, only a deltaLink from now on: the documented way to skip the first full round.
        ids = _filter_ids(req.query.get("$filter"))
        state = {"s": tenant.next_seq - 1, "sel": select, "f": ids}
        token = encode_skiptoken(state)
        body = {
            "@odata.context": f"{req.graph_base}/$metadata#groups",
            "@odata.deltaLink": f"{req.graph_base}/groups/delta?$deltatoken={token}",
            "value": [],
        }
        return GraphResponse(200, body)
    # Delta has processing delays: changes still replicating come in a later round, from the first of them on.
    lag = emu.replication_lag_seconds()
    lagging = tenant.lagging_groups(lag)
    since = 0
    if delta_token is not None:
        state = decode_skiptoken(delta_token)
        ids = state.get("f")
        select = state.get("sel")
        since = int(state.get("s", 0))
    else:
        ids = _filter_ids(req.query.get("$filter"))
    upto = _replicated_until(tenant, since, lagging)
    if delta_token is not None:
        entries = _changes(tenant, since, ids, select, upto)
    else:
        entries = _initial(tenant, ids, select, lag)
    round_id = uuid.uuid4().hex
    if len(emu.delta_rounds) >= MAX_ROUNDS_KEPT:
        emu.delta_rounds.pop(next(iter(emu.delta_rounds)))
    emu.delta_rounds[round_id] = entries
    state = {"r": round_id, "s": upto, "sel": select, "f": ids}
    return _page(req, emu, entries, round_id, 0, state)


def _delta_properties() -> set[str]:
    from .groups import GROUP_PROPERTIES

    return GROUP_PROPERTIES | {"members"}


def _page(
    req: GraphRequest,
    emu: Emulator,
    entries: list[dict[str, Any]],
    round_id: str,
    index: int,
    state: dict[str, Any],
) -> GraphResponse:
    start = index * GROUPS_PER_PAGE
    chunk = entries[start : start + GROUPS_PER_PAGE]
    body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#groups"}
    if start + GROUPS_PER_PAGE < len(entries):
        token = encode_skiptoken({**state, "r": round_id, "p": index + 1})
        body["@odata.nextLink"] = f"{req.graph_base}/groups/delta?$skiptoken={token}"
    else:
        token = encode_skiptoken({"s": state["s"], "sel": state.get("sel"), "f": state.get("f")})
        body["@odata.deltaLink"] = f"{req.graph_base}/groups/delta?$deltatoken={token}"
        emu.delta_rounds.pop(round_id, None)
    body["value"] = chunk
    return GraphResponse(200, body)
