"""HTTP API of the Microsoft 365 integration: /api/v1/organizations/{org_id}/microsoft/... (thin: parse, call, render).

A Graph failure of a call that changed (or tried to change) something is rendered here rather than raised, so the
request's unit of work still commits what the service recorded: the failed attempt's audit event, or the clearing
of a link to a group deleted outside Equa.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.deps import CurrentUser
from equa.accounts.platform_admins import is_platform_admin, platform_admin_required
from equa.db.session import release_connection
from equa.deps import DbSession, read_cache_for
from equa.errors import problem_response
from equa.microsoft import groups
from equa.microsoft.audit_routes import router as audit_router
from equa.microsoft.deps import Graph, MicrosoftAdmin, Scope, require_microsoft_enabled
from equa.microsoft.exclusion_routes import router as exclusions_router
from equa.microsoft.graph import GraphError
from equa.microsoft.graph.permissions import group_scope_of, permission_names
from equa.microsoft.models import SyncRun
from equa.microsoft.problems import graph_problem
from equa.microsoft.schemas import (
    AddMemberIn,
    AdminConsentOut,
    CapabilitiesOut,
    CreateGroupIn,
    GroupChoiceOut,
    GroupMemberOut,
    GroupMembersPageOut,
    GroupOut,
    GroupSearchPageOut,
    GroupSummaryOut,
    LastSyncOut,
    LinkGroupIn,
    MemberChangeOut,
    StatusOut,
    problem_responses,
)
from equa.microsoft.status import StatusCache, get_status
from equa.microsoft.tenants.routing import status_graph, tenant_status
from equa.pagination import cursors_for

T = TypeVar("T")

PREFIX = "/api/v1/organizations/{org_id}/microsoft"

router = APIRouter(prefix=PREFIX, tags=["microsoft"], dependencies=[Depends(require_microsoft_enabled)])
operator_router = APIRouter(
    prefix="/api/v1/microsoft", tags=["microsoft"], dependencies=[Depends(require_microsoft_enabled)]
)

READ_ERRORS = problem_responses(401, 403, 404, 409, 422, 502, 503)
WRITE_ERRORS = READ_ERRORS


async def status_cache(request: Request) -> StatusCache:
    cache: StatusCache | None = getattr(request.app.state, "microsoft_status_cache", None)
    if cache is None:
        cache = StatusCache(request.app.state.settings.status_cache_seconds)
        request.app.state.microsoft_status_cache = cache
    return cache


Cache = Annotated[StatusCache, Depends(status_cache)]


async def rendered(request: Request, session: AsyncSession, work: Awaitable[T]) -> T | JSONResponse:
    """Await `work`; a Graph failure or a missing group becomes the response, and the unit of work commits.

    The authentication reads are over by now: their connection goes back to the pool before `work` waits on Graph.
    """
    await release_connection(session)
    try:
        return await work
    except groups.GroupMissing as missing:
        return problem_response(missing)
    except GraphError as error:
        return problem_response(graph_problem(error, request.app.state.settings))


def group_out(group: dict[str, Any], member_count: int | None) -> GroupOut:
    refusal = groups.linkability(group)
    created = group.get("createdDateTime")
    return GroupOut(
        id=uuid.UUID(str(group["id"])),
        display_name=group.get("displayName"),
        description=group.get("description"),
        mail=group.get("mail"),
        mail_nickname=group.get("mailNickname"),
        visibility=group.get("visibility"),
        group_types=list(group.get("groupTypes") or []),
        member_count=member_count,
        created_date_time=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
        capabilities=CapabilitiesOut(
            manage_members=refusal is None,
            sync=refusal is None,
            reason=refusal.reason if refusal else None,
            action=refusal.action if refusal else None,
        ),
    )


def member_out(member: groups.GroupMember) -> GroupMemberOut:
    return GroupMemberOut(
        id=member.id,
        object_type=member.object_type,
        display_name=member.display_name,
        mail=member.mail,
        user_principal_name=member.user_principal_name,
        user_type=member.user_type,
        equa_user_id=member.equa_user_id,
    )


@router.get("/status", response_model=StatusOut, responses=problem_responses(401, 403, 404, 422))
async def read_status(
    request: Request, context: MicrosoftAdmin, session: DbSession, cache: Cache
) -> StatusOut:
    """Whether the integration is on, the linked group's summary and health; fast even when Graph is not."""
    settings = request.app.state.settings
    tenant, graph = await status_graph(
        session, getattr(request.app.state, "graph", None), settings, context.organization
    )
    result = await get_status(session, graph, cache, context.organization, settings, read_cache_for(request))
    result = tenant_status(result, tenant, graph, settings)
    run = result.last_sync
    return StatusOut(
        enabled=result.enabled,
        linked=result.linked,
        group_id=uuid.UUID(result.group_id) if result.group_id else None,
        group=GroupSummaryOut(
            display_name=result.group.display_name,
            description=result.group.description,
            member_count=result.group.member_count,
        )
        if result.group
        else None,
        last_sync=last_run_out(run),
        last_preview=last_run_out(result.last_preview),
        health=result.health,  # type: ignore[arg-type]
        action=result.action,
        admin_consent_url=result.admin_consent_url,
        stale=result.stale,
        age_seconds=result.age_seconds,
        checked_at=result.checked_at,
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.tenant_name,
        tenant_domain=tenant.tenant_domain,
        connection=tenant.connection.value,
    )


@router.post("/link-group", response_model=GroupOut, responses=WRITE_ERRORS)
async def link(
    request: Request,
    body: LinkGroupIn,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    scope: Scope,
) -> GroupOut | JSONResponse:
    """Link an existing group by id; 200 also when it already is this organization's group (no change).

    403 microsoft_group_out_of_scope for a group outside MS_GROUP_SCOPE (its action names the grant command).
    """

    async def work() -> GroupOut:
        result = await groups.link_group(
            session, graph, context.organization, context.user, body.group_id, scope=scope
        )
        cache.forget(graph, str(body.group_id))
        return group_out(result.group, None)

    return await rendered(request, session, work())


@router.post(
    "/create-group",
    response_model=GroupOut,
    status_code=status.HTTP_201_CREATED,
    responses={**WRITE_ERRORS, **problem_responses(429)},
)
async def create(
    request: Request,
    body: CreateGroupIn,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    scope: Scope,
    cache: Cache,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Repeat a request with the same key to get the same group instead of a second one.",
        ),
    ] = None,
) -> GroupOut | JSONResponse:
    """Create a private Microsoft 365 group, make the caller an owner when they are in the tenant, and link it."""

    async def work() -> GroupOut:
        result = await groups.create_group(
            session,
            graph,
            context.organization,
            context.user,
            display_name=body.display_name,
            description=body.description,
            mail_nickname=body.mail_nickname,
            idempotency_key=idempotency_key,
            scope=scope,
            daily_limit=request.app.state.settings.group_create_limit,
        )
        if not result.replayed:
            # Graph shows a new group only once replicated; the status card shows it now.
            cache.remember_created(graph, result.group)
        return group_out(result.group, None)

    return await rendered(request, session, work())


@router.delete(
    "/unlink-group",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def unlink(context: MicrosoftAdmin, session: DbSession, graph: Graph, cache: Cache) -> Response:
    """Forget the link; the group itself stays in Microsoft 365."""
    group_id = await groups.unlink_group(session, context.organization, context.user)
    cache.forget(graph, group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/group", response_model=GroupOut, responses=READ_ERRORS)
async def read_group(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: Graph, cache: Cache, scope: Scope
) -> GroupOut | JSONResponse:
    """The linked group as Microsoft 365 has it now; 409 microsoft_group_missing (link cleared) if it was deleted."""

    async def work() -> GroupOut:
        group_id = groups.linked_group_id(context.organization)
        try:
            details = await groups.group_details(
                session, graph, context.organization, context.user, scope=scope
            )
        except groups.GroupMissing:
            cache.forget(graph, group_id)
            raise
        return group_out(details.group, details.member_count)

    return await rendered(request, session, work())


@router.get("/group/members", response_model=GroupMembersPageOut, responses=READ_ERRORS)
async def read_members(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    scope: Scope,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="nextCursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=groups.MAX_PAGE_SIZE)] = groups.DEFAULT_PAGE_SIZE,
) -> GroupMembersPageOut | JSONResponse:
    """One page of the group's members; equaUserId marks those who match a member of this organization."""

    async def work() -> GroupMembersPageOut:
        page = await groups.list_group_members(
            session,
            graph,
            context.organization,
            context.user,
            scope=scope,
            cursors=cursors_for(request, "group-members", context.organization.id),
            cursor=cursor,
            limit=limit,
        )
        return GroupMembersPageOut(items=[member_out(m) for m in page.items], next_cursor=page.next_cursor)

    return await rendered(request, session, work())


@router.post(
    "/group/members",
    response_model=MemberChangeOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": MemberChangeOut, "description": "Already a member; nothing changed"},
        **WRITE_ERRORS,
    },
)
async def add_member(
    request: Request,
    body: AddMemberIn,
    response: Response,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    scope: Scope,
) -> MemberChangeOut | JSONResponse:
    """Add a user by directory id, address or Equa team member: 201 added, 200 already a member."""

    async def work() -> MemberChangeOut:
        # The member count on the status card changes with this; do not serve the old one for a minute.
        cache.expire(graph, groups.linked_group_id(context.organization))
        change = await groups.add_group_member(
            session,
            graph,
            context.organization,
            context.user,
            scope=scope,
            user_id=body.user_id,
            email=str(body.email) if body.email else None,
            equa_user_id=body.equa_user_id,
        )
        if not change.added:
            response.status_code = status.HTTP_200_OK
        return MemberChangeOut(member=member_out(change.member), added=change.added)

    return await rendered(request, session, work())


@router.delete(
    "/group/members/{member_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=WRITE_ERRORS,
)
async def remove_member(
    request: Request,
    member_id: uuid.UUID,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    scope: Scope,
) -> Response:
    """Remove a member; 204 also when they were not one (the result the admin wanted holds)."""

    async def work() -> Response:
        cache.expire(graph, groups.linked_group_id(context.organization))
        await groups.remove_group_member(
            session, graph, context.organization, context.user, member_id, scope=scope
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return await rendered(request, session, work())


@router.get("/groups", response_model=GroupSearchPageOut, responses=READ_ERRORS)
async def search(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    scope: Scope,
    search: Annotated[
        str | None, Query(max_length=256, description="Start of a word of the displayName")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
    limit: Annotated[int, Query(ge=1, le=groups.MAX_PAGE_SIZE)] = groups.SEARCH_PAGE_SIZE,
) -> GroupSearchPageOut | JSONResponse:
    """The group picker: only groups this organization may link (MS_GROUP_SCOPE); each says whether it can
    be linked, and why not."""

    async def work() -> GroupSearchPageOut:
        page = await groups.search_groups(
            session,
            graph,
            context.organization,
            scope=scope,
            cursors=cursors_for(request, "group-search", context.organization.id),
            search=search,
            cursor=cursor,
            limit=limit,
        )
        return GroupSearchPageOut(
            items=[
                GroupChoiceOut(
                    id=uuid.UUID(str(choice.group["id"])),
                    display_name=choice.group.get("displayName"),
                    description=choice.group.get("description"),
                    mail=choice.group.get("mail"),
                    group_types=list(choice.group.get("groupTypes") or []),
                    linkable=choice.refusal is None,
                    reason_code=choice.refusal.code if choice.refusal else None,
                    reason=choice.refusal.reason if choice.refusal else None,
                    action=choice.refusal.action if choice.refusal else None,
                    linked_here=choice.linked_here,
                )
                for choice in page.items
            ],
            next_cursor=page.next_cursor,
        )

    return await rendered(request, session, work())


@operator_router.get(
    "/admin-consent-url", response_model=AdminConsentOut, responses=problem_responses(401, 403, 404)
)
async def admin_consent_url(request: Request, user: CurrentUser) -> AdminConsentOut:
    """The URL a tenant administrator opens to grant the app its Graph permissions (platform admins only)."""
    if not is_platform_admin(user, request.app.state.settings):
        raise platform_admin_required(
            "Only an operator of this Equa installation can see the app registration's consent URL."
        )
    settings = request.app.state.settings
    return AdminConsentOut(
        url=settings.admin_consent_url(),
        tenant_id=settings.ms_auth_tenant_id,
        client_id=settings.ms_auth_client_id,
        permissions=permission_names(group_scope_of(settings)),
    )


def last_run_out(run: SyncRun | None) -> LastSyncOut | None:
    if run is None:
        return None
    return LastSyncOut(
        id=run.id,
        status=run.status,
        trigger=run.trigger,
        dry_run=run.dry_run,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        counts=dict(run.counts or {}),
        error_code=run.error_code,
        error_message=run.error_message,
    )


def microsoft_routers() -> list[APIRouter]:
    return [router, operator_router, exclusions_router, audit_router]
