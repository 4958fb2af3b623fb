"""Group delta rounds: what changed in the members of up to 50 groups since a stored deltaLink.

`GET /groups/delta?$select=members&$filter=id eq 'a' or id eq 'b' ...` tracks up to 50 groups in one request. A round
follows nextLinks until a deltaLink, which the next round resumes from. Microsoft keeps the sync state behind a
deltaLink for a limited time (7 days for identity resources); after that it answers 400 or 410 with
`syncStateNotFound` (or a similar code), raised here as `DeltaExpired`: the caller starts a full round again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from equa.microsoft.graph.errors import GraphError

if TYPE_CHECKING:
    from equa.microsoft.graph.client import GraphClient

MAX_GROUPS_PER_ROUND = 50  # Graph's limit on the ids a delta $filter may name
EXPIRED_CODES = frozenset(
    {"syncstatenotfound", "resyncrequired", "syncstateinvalid", "badrequest_expiredtoken"}
)
EXPIRED_STATUSES = (400, 410)


class DeltaExpired(GraphError):
    """The deltaLink's sync state is gone: the groups it tracked need a full reconcile and a new round."""


@dataclass
class GroupChanges:
    """One group's changes in a round: directory users added to it, removed from it, or the group deleted."""

    added: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    deleted: bool = False

    def note_member(self, member: dict[str, Any]) -> None:
        if "user" not in str(member.get("@odata.type", "#microsoft.graph.user")):
            return  # nested groups, devices and service principals are not people
        member_id = str(member.get("id", "")).lower()
        if not member_id:
            return
        if "@removed" in member:
            self.added.discard(member_id)
            self.removed.add(member_id)
        else:
            self.removed.discard(member_id)
            self.added.add(member_id)


@dataclass
class DeltaRoundResult:
    """A round's changes by group id (lower case), its new deltaLink, and the requests it took."""

    delta_link: str
    groups: dict[str, GroupChanges] = field(default_factory=dict)
    requests: int = 0


def delta_filter(group_ids: Sequence[str]) -> str:
    if not group_ids or len(group_ids) > MAX_GROUPS_PER_ROUND:
        raise ValueError(f"a delta round tracks 1 to {MAX_GROUPS_PER_ROUND} groups, not {len(group_ids)}")
    return " or ".join(f"id eq '{group_id}'" for group_id in group_ids)


def _is_expired(error: GraphError) -> bool:
    code = (error.code or "").lower()
    return error.status == 410 or (error.status in EXPIRED_STATUSES and code in EXPIRED_CODES)


def _expired(error: GraphError) -> DeltaExpired:
    return DeltaExpired(
        error.message,
        status=error.status,
        code=error.code,
        request_id=error.request_id,
        action="Nothing to do: the groups of this round get a full reconcile and a new round starts.",
    )


async def _get(graph: GraphClient, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        response = await graph.get(url, params=params)
    except GraphError as error:
        if _is_expired(error):
            raise _expired(error) from error
        raise
    body = response.json() or {}
    return body if isinstance(body, dict) else {}


async def start_delta_round(graph: GraphClient, group_ids: Sequence[str]) -> str:
    """A deltaLink tracking these groups from now on, without their current members (`$deltatoken=latest`):
    one request, for groups whose members a full sync reads anyway."""
    body = await _get(
        graph,
        "groups/delta",
        {"$select": "members", "$filter": delta_filter(group_ids), "$deltatoken": "latest"},
    )
    link = body.get("@odata.deltaLink")
    if not isinstance(link, str):
        raise GraphError("Microsoft Graph answered a delta request without a deltaLink.", code="noDeltaLink")
    return link


async def initial_delta_round(graph: GraphClient, group_ids: Sequence[str]) -> DeltaRoundResult:
    """Every member of these groups (all as additions), and the deltaLink of the next round."""
    url = "groups/delta"
    params: dict[str, str] | None = {"$select": "members", "$filter": delta_filter(group_ids)}
    return await _follow(graph, url, params)


async def resume_delta_round(graph: GraphClient, delta_link: str) -> DeltaRoundResult:
    """What changed since `delta_link`; raises DeltaExpired when its sync state is gone."""
    return await _follow(graph, delta_link, None)


async def _follow(graph: GraphClient, url: str, params: dict[str, str] | None) -> DeltaRoundResult:
    groups: dict[str, GroupChanges] = {}
    requests = 0
    while True:
        body = await _get(graph, url, params)
        requests += 1
        for entry in body.get("value", []):
            if not isinstance(entry, dict) or not entry.get("id"):
                continue
            changes = groups.setdefault(str(entry["id"]).lower(), GroupChanges())
            if "@removed" in entry:
                changes.deleted = True
                continue
            for member in entry.get("members@delta", []) or []:
                if isinstance(member, dict):
                    changes.note_member(member)
        next_link = body.get("@odata.nextLink")
        if isinstance(next_link, str):
            url, params = next_link, None
            continue
        link = body.get("@odata.deltaLink")
        if not isinstance(link, str):
            raise GraphError("Microsoft Graph ended a delta round without a deltaLink.", code="noDeltaLink")
        return DeltaRoundResult(link, groups, requests)
