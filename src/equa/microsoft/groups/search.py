"""The group picker: the groups an organization may link under MS_GROUP_SCOPE, in its three modes.

`granted` lists the organization's granted and created groups; `administrative-unit` those, then the unit's
groups; `tenant` every group of the tenant (Graph's $search). Nothing the caller sends widens the scope.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from equa.microsoft import repository
from equa.microsoft.graph import GraphClient, GraphNotFound
from equa.microsoft.groups.linking import GROUP_FIELDS, fetch_group, linkability
from equa.microsoft.groups.page_sizes import MAX_PAGE_SIZE
from equa.microsoft.groups.problems import LinkRefusal
from equa.microsoft.scope import GroupScope, granted_group_ids
from equa.organizations.models import Organization
from equa.pagination import Cursor, Cursors, invalid_cursor, skip_token_of
from equa.settings import GroupScopeMode

SEARCH_PAGE_SIZE = 25


@dataclass(frozen=True)
class GroupChoice:
    group: dict[str, Any]
    refusal: LinkRefusal | None
    linked_here: bool


@dataclass(frozen=True)
class GroupSearchPage:
    items: list[GroupChoice]
    next_cursor: str | None


_LINKED_ELSEWHERE = LinkRefusal(
    "linked_to_another_organization",
    "It is already linked to another Equa organization.",
    "Choose another group, or create a new one.",
)


async def search_groups(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    *,
    scope: GroupScope,
    cursors: Cursors,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = SEARCH_PAGE_SIZE,
) -> GroupSearchPage:
    """The group picker: groups the organization may link under MS_GROUP_SCOPE, each marked linkable or not.

    `granted`: its granted and created groups. `administrative-unit`: those (first page), then the unit's groups.
    `tenant`: every group of the tenant. `search` keeps groups with a word of the displayName starting with it.
    Groups out of scope are never listed, whatever the search text or cursor.
    """
    limit = max(1, min(MAX_PAGE_SIZE, limit))
    position: Cursor | None = None
    if cursor is not None:
        # A next page continues the search the cursor was signed for, whatever `search` says now.
        position = cursors.read(cursor, max_size=MAX_PAGE_SIZE)
        limit, search = position.size, position.search
    term = (search or "").replace('"', " ").replace("\\", " ").strip()
    page = _PickerPage(cursors, term, position, limit)
    if scope.tenant_wide:
        return await _search_tenant(session, graph, organization, page)
    if scope.mode is GroupScopeMode.ADMINISTRATIVE_UNIT:
        return await _search_unit(session, graph, organization, scope, page)
    return await _search_granted(session, graph, organization, page)


@dataclass(frozen=True)
class _PickerPage:
    """Which page of the picker is asked for: the signed cursor's position (None on the first page) and the term."""

    cursors: Cursors
    term: str
    position: Cursor | None
    limit: int

    def skip_token(self) -> str | None:
        """Graph's skip token of a next page (None on the first page); a cursor without one was not ours."""
        if self.position is None:
            return None
        if self.position.skip_token is None:
            raise invalid_cursor()
        return self.position.skip_token

    def next_from_graph(self, body: dict[str, Any]) -> str | None:
        token = skip_token_of(body.get("@odata.nextLink"))
        return self.cursors.sign(size=self.limit, skip_token=token, search=self.term) if token else None


def _matches(group: dict[str, Any], term: str) -> bool:
    """Graph's displayName search, approximately: a word of the name starts with the term (case-insensitive)."""
    if not term:
        return True
    name = str(group.get("displayName") or "").casefold()
    wanted = term.casefold()
    return name.startswith(wanted) or any(
        word.startswith(wanted) for word in re.split(r"[\s\-_.,:;()]+", name)
    )


async def _granted_groups(graph: GraphClient, group_ids: list[str]) -> list[dict[str, Any]]:
    """The groups as Graph has them now, in the order given; those deleted in Microsoft 365 are left out."""

    async def one(group_id: str) -> dict[str, Any] | None:
        try:
            return await fetch_group(graph, group_id)
        except GraphNotFound:
            return None

    found = await asyncio.gather(*(one(group_id) for group_id in group_ids))
    return [group for group in found if group is not None]


async def _choices(
    session: AsyncSession, organization: Organization, groups: list[dict[str, Any]]
) -> list[GroupChoice]:
    """Each group with why it cannot be linked (its kind, or another organization has it), or None."""
    ids: list[uuid.UUID] = []
    for group in groups:
        try:
            ids.append(uuid.UUID(str(group.get("id"))))
        except ValueError:
            continue
    linked_to = await repository.organizations_linked_to(session, ids)
    granted_to = await repository.grant_holders(session, [str(i) for i in ids])
    items = []
    for group in groups:
        key = str(group.get("id")).lower()
        owner = linked_to.get(key)
        holder = granted_to.get(key)
        here = owner == organization.id
        elsewhere = (owner is not None and not here) or (holder is not None and holder != organization.id)
        refusal = linkability(group) or (_LINKED_ELSEWHERE if elsewhere else None)
        items.append(GroupChoice(group, refusal, here))
    return items


async def _search_tenant(
    session: AsyncSession, graph: GraphClient, organization: Organization, page: _PickerPage
) -> GroupSearchPage:
    params: dict[str, str] = {"$select": GROUP_FIELDS, "$top": str(page.limit)}
    if page.term:
        params["$search"] = f'"displayName:{page.term}"'
        params["$orderby"] = "displayName"
        params["$count"] = "true"
    skip_token = page.skip_token()
    if skip_token is not None:
        params["$skiptoken"] = skip_token
    response = await graph.get(
        graph.url_for("groups"), params=params, headers={"ConsistencyLevel": "eventual"}
    )
    body = response.json() or {}
    groups: list[dict[str, Any]] = body.get("value") or []
    return GroupSearchPage(await _choices(session, organization, groups), page.next_from_graph(body))


async def _search_granted(
    session: AsyncSession, graph: GraphClient, organization: Organization, page: _PickerPage
) -> GroupSearchPage:
    """The organization's granted and created groups, oldest grant first, paged by position."""
    offset = 0
    if page.position is not None:
        if len(page.position.position) != 1 or not page.position.position[0].isdigit():
            raise invalid_cursor()
        offset = int(page.position.position[0])
    limit, term = page.limit, page.term
    group_ids = await granted_group_ids(session, organization.id)
    if term:
        # A search has to read every granted group to compare names; an organization has a handful.
        matching = [group for group in await _granted_groups(graph, group_ids) if _matches(group, term)]
        found = matching[offset : offset + limit]
        more = offset + limit < len(matching)
    else:
        found = await _granted_groups(graph, group_ids[offset : offset + limit])
        more = offset + limit < len(group_ids)
    next_cursor = (
        page.cursors.sign(size=limit, position=(str(offset + limit),), search=term) if more else None
    )
    return GroupSearchPage(await _choices(session, organization, found), next_cursor)


async def _search_unit(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    scope: GroupScope,
    page: _PickerPage,
) -> GroupSearchPage:
    """The first page starts with the organization's granted and created groups, then the unit's groups follow."""
    own_ids = await granted_group_ids(session, organization.id)
    first: list[dict[str, Any]] = []
    params = {"$select": GROUP_FIELDS, "$top": str(page.limit)}
    headers: dict[str, str] = {}
    if page.term:
        # Graph searches the unit's groups, as the tenant mode searches the tenant's: filtering one page at a time
        # here would answer a search in a large unit with empty pages until the match came round.
        params["$search"] = f'"displayName:{page.term}"'
        params["$count"] = "true"
        headers["ConsistencyLevel"] = "eventual"
    skip_token = page.skip_token()
    if skip_token is not None:
        params["$skiptoken"] = skip_token
    else:
        first = [group for group in await _granted_groups(graph, own_ids) if _matches(group, page.term)]
    response = await graph.get(graph.url_for(scope.unit_members_path()), params=params, headers=headers)
    body = response.json() or {}
    own = set(own_ids)
    unit_groups = [group for group in body.get("value") or [] if str(group.get("id", "")).lower() not in own]
    choices = await _choices(session, organization, first + unit_groups)
    # A unit group another organization holds is out of this organization's reach: not listed at all.
    visible = [choice for choice in choices if choice.refusal is not _LINKED_ELSEWHERE or choice.linked_here]
    return GroupSearchPage(visible, page.next_from_graph(body))
