"""GET /groups/delta: a full first round, then rounds carrying only what changed since the delta link."""

from __future__ import annotations

import bisect
import uuid
from typing import TYPE_CHECKING, Any

from .delta_tokens import EXPIRED_MESSAGE, SYNC_STATE_NOT_FOUND
from .errors import GraphError, bad_request
from .odata import decode_skiptoken, encode_skiptoken, parse_filter, parse_select
from .router import READ_GROUP, GraphRequest, GraphResponse, route

if TYPE_CHECKING:
    from .runtime import Emulator
    from .state import ChangeEvent, Tenant

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
MAX_ROUNDS_KEPT = 2000  # rounds of several pages in progress; an evicted one is computed again


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


def _after(events: list[ChangeEvent], since: int) -> int:
    """Index of the first event with a sequence number over `since` (events are in sequence order)."""
    return bisect.bisect_right(events, since, key=lambda event: event.seq)


def _replicated_until(tenant: Tenant, since: int, lagging: set[str]) -> int:
    """The last change sequence number a round may include: just before the first change still replicating."""
    first_lagging: int | None = None
    for group_id in lagging:
        events = tenant.group_events(group_id)
        if not events:
            continue
        index = _after(events, since)
        if index < len(events) and (first_lagging is None or events[index].seq < first_lagging):
            first_lagging = events[index].seq
    return tenant.next_seq - 1 if first_lagging is None else first_lagging - 1


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


def _events(tenant: Tenant, since: int, ids: list[str] | None, upto: int) -> list[ChangeEvent]:
    """The events of a round in sequence order: from the per-group index when the round names its groups, so a
    round over unchanged groups costs a few binary searches whatever the tenant's history."""
    if ids is None:
        return [e for e in tenant.changes[_after(tenant.changes, since) :] if e.seq <= upto]
    found: list[ChangeEvent] = []
    for group_id in dict.fromkeys(ids):
        events = tenant.group_events(group_id)
        if events:
            found.extend(e for e in events[_after(events, since) :] if e.seq <= upto)
    found.sort(key=lambda event: event.seq)
    return found


def _changes(
    tenant: Tenant, since: int, ids: list[str] | None, select: list[str] | None, upto: int
) -> list[dict[str, Any]]:
    with_members = select is None or "members" in select
    touched: dict[str, dict[str, str]] = {}  # group -> member -> last event kind
    for event in _events(tenant, since, ids, upto):
        members = touched.setdefault(event.group_id, {})
        if event.member_id is not None:
            members[event.member_id] = event.kind
    entries: list[dict[str, Any]] = []
    for group_id, members in touched.items():
        group = tenant.groups.get(group_id)
        if group is None:
            reason = "changed" if group_id in tenant.deleted_groups else "deleted"
            entries.append({"id": group_id, "@removed": {"reason": reason}})
            continue
        refs = []
        if with_members:
            for member_id, kind in members.items():
                refs.append(_member_ref(tenant, member_id, removed=kind == "remove"))
        entries.extend(_entries_with_members(_group_view(group, select), refs))
    return entries


def _check_expiry(emu: Emulator, tenant: Tenant, state: dict[str, Any]) -> None:
    status = emu.delta_tokens.expired_status(tenant.id, state)
    if status is not None:
        emu.delta_tokens.expired_answers += 1
        raise GraphError(status, SYNC_STATE_NOT_FOUND, EXPIRED_MESSAGE)


@route("GET", "/groups/delta", "read")
def groups_delta(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_GROUP)
    tenant = req.tenant
    if "$skiptoken" in req.query:
        state = decode_skiptoken(req.query["$skiptoken"])
        _check_expiry(emu, tenant, state)
        round_id = str(state.get("r"))
        round_entries = emu.delta_rounds.get(round_id)
        if round_entries is None:
            # Evicted from the cache of rounds in progress: the token holds what it takes to compute it again.
            round_entries = _round_entries(emu, tenant, state)
            emu.delta_rounds[round_id] = round_entries
        return _page(req, emu, round_entries, round_id, int(state.get("p", 0)), state)
    select = parse_select(req.query.get("$select"), _delta_properties(), "microsoft.graph.group")
    # Query option names are case-insensitive: Microsoft documents $deltatoken, the SDKs send $deltaToken.
    delta_token = next((v for k, v in req.query.items() if k.lower() == "$deltatoken"), None)
    if delta_token is not None and delta_token.lower() == "latest":
        # No data, only a deltaLink from now on: the documented way to skip the first full round.
        ids = _filter_ids(req.query.get("$filter"))
        state = {"s": tenant.next_seq - 1, "sel": select, "f": ids, **emu.delta_tokens.stamp(tenant.id)}
        token = encode_skiptoken(state)
        body = {
            "@odata.context": f"{req.graph_base}/$metadata#groups",
            "@odata.deltaLink": f"{req.graph_base}/groups/delta?$deltatoken={token}",
            "value": [],
        }
        return GraphResponse(200, body)
    since = 0
    if delta_token is not None:
        state = decode_skiptoken(delta_token)
        _check_expiry(emu, tenant, state)
        ids = state.get("f")
        select = state.get("sel")
        since = int(state.get("s", 0))
    else:
        ids = _filter_ids(req.query.get("$filter"))
    # Delta has processing delays: changes still replicating come in a later round, from the first of them on.
    lagging = tenant.lagging_groups(emu.replication_lag_seconds())
    upto = _replicated_until(tenant, since, lagging)
    state = {"b": since, "i": delta_token is None, "s": upto, "sel": select, "f": ids}
    entries = _round_entries(emu, tenant, state)
    round_id = uuid.uuid4().hex
    state["r"] = round_id
    state.update(emu.delta_tokens.stamp(tenant.id))
    if len(entries) > GROUPS_PER_PAGE:  # a round of one page needs no keeping
        if len(emu.delta_rounds) >= MAX_ROUNDS_KEPT:
            emu.delta_rounds.pop(next(iter(emu.delta_rounds)))
        emu.delta_rounds[round_id] = entries
    return _page(req, emu, entries, round_id, 0, state)


def _round_entries(emu: Emulator, tenant: Tenant, state: dict[str, Any]) -> list[dict[str, Any]]:
    ids, select = state.get("f"), state.get("sel")
    if state.get("i"):
        return _initial(tenant, ids, select, emu.replication_lag_seconds())
    return _changes(tenant, int(state.get("b", 0)), ids, select, int(state["s"]))


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
        link = {
            "s": state["s"],
            "sel": state.get("sel"),
            "f": state.get("f"),
            **emu.delta_tokens.stamp(req.tenant.id),
        }
        body["@odata.deltaLink"] = f"{req.graph_base}/groups/delta?$deltatoken={encode_skiptoken(link)}"
        emu.delta_rounds.pop(round_id, None)
    body["value"] = chunk
    return GraphResponse(200, body)
