"""Sync API under /api/v1/organizations/{org_id}/microsoft/ (thin: parse, authorize, call, render)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse

from equa.deps import DbSession
from equa.errors import problem_responses
from equa.microsoft.deps import Graph, MicrosoftAdmin, Scope, require_microsoft_enabled
from equa.microsoft.models import FlagStatus, Outcome
from equa.microsoft.sync import flagged, runs, sync_settings
from equa.microsoft.sync.schemas import (
    FlaggedMemberOut,
    FlaggedMemberPageOut,
    OutcomeOut,
    OutcomePageOut,
    SyncMembersIn,
    SyncRunOut,
    SyncRunPageOut,
    SyncSettingsIn,
    SyncSettingsOut,
)
from equa.organizations.routes import public_link
from equa.pagination import cursors_for
from equa.settings import Settings

PREFIX = "/api/v1/organizations/{org_id}/microsoft"
MAX_WAIT_SECONDS = 60.0

# Every operation: 401 not signed in, 403 not an admin (or no CSRF token), 404 feature off or no such organization
# (or not a member), 422 a malformed path, query or body.
ADMIN_ERRORS = (401, 403, 404, 422)
DESCRIPTIONS = {
    "s404": "Feature disabled, no such organization (or not a member), or no such run or flagged member",
    "s409": "No Microsoft 365 group is linked, or the person is already on the team",
    "s429": "A sync or dry run was asked for less than EQUA_SYNC_MIN_INTERVAL seconds ago (see Retry-After)",
}


def _errors(*extra: int) -> dict[int | str, dict[str, object]]:
    return problem_responses(*sorted({*ADMIN_ERRORS, *extra}), **DESCRIPTIONS)


router = APIRouter(prefix=PREFIX, tags=["microsoft sync"], dependencies=[Depends(require_microsoft_enabled)])


def _run_location(request: Request, org_id: uuid.UUID, run_id: uuid.UUID) -> str:
    path = str(request.url_for("get_sync_run", org_id=str(org_id), run_id=str(run_id)).path)
    settings: Settings = request.app.state.settings
    return settings.public_link(path)


@router.post(
    "/sync-members",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncRunOut,
    responses={
        200: {"model": SyncRunOut, "description": "The run finished within `wait` seconds."},
        **_errors(409, 429),
    },
)
async def sync_members(
    context: MicrosoftAdmin,
    session: DbSession,
    request: Request,
    graph: Graph,
    scope: Scope,
    body: SyncMembersIn | None = None,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the run to finish.")
    ] = 0,
) -> JSONResponse:
    """Start a sync (or get the one already queued or running). 202 with the run; 200 if it finished in time.

    An organization may ask for one sync or dry run every EQUA_SYNC_MIN_INTERVAL seconds: sooner, 429 with
    Retry-After (unless a run is still queued or running: that run is answered)."""
    dry_run = body.dry_run if body is not None else False
    if context.organization.microsoft_group is not None:
        # Refused now rather than as a failed run: the group is outside MS_GROUP_SCOPE (the job checks again).
        await scope.check(session, graph, context.organization.id, context.organization.microsoft_group)
    run = await runs.request_sync(
        session,
        context.organization,
        context.user,
        dry_run,
        "api",
        lease_seconds=request.app.state.settings.sync_lease_seconds,
        min_interval=request.app.state.settings.sync_min_interval_seconds,
    )
    # Committed here, not at the end of the request: the task is handed to the broker on commit, and a worker
    # (or `wait` below) must see the run.
    await session.commit()
    code = status.HTTP_202_ACCEPTED
    if wait > 0:
        finished = await runs.wait_for_run(request.app.state.session_factory, run.id, wait)
        if finished is not None:
            run, code = finished, status.HTTP_200_OK
    return JSONResponse(
        SyncRunOut.of(run).model_dump(mode="json", by_alias=True),
        status_code=code,
        headers={"Location": _run_location(request, context.organization.id, run.id)},
    )


@router.get("/sync-runs", response_model=SyncRunPageOut, responses=_errors())
async def list_sync_runs(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=runs.PAGE_SIZE_MAX)] = 20,
) -> SyncRunPageOut:
    rows, next_cursor = await runs.list_runs(
        session,
        context.organization.id,
        cursors=cursors_for(request, "sync-runs", context.organization.id),
        cursor=cursor,
        limit=limit,
    )
    return SyncRunPageOut(items=[SyncRunOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/sync-runs/{run_id}", response_model=SyncRunOut, name="get_sync_run", responses=_errors())
async def get_sync_run(context: MicrosoftAdmin, session: DbSession, run_id: uuid.UUID) -> SyncRunOut:
    return SyncRunOut.of(await runs.get_run(session, context.organization.id, run_id))


@router.get("/sync-runs/{run_id}/outcomes", response_model=OutcomePageOut, responses=_errors())
async def list_sync_outcomes(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    run_id: uuid.UUID,
    outcome: Annotated[Outcome | None, Query(description="Only this outcome.")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=runs.PAGE_SIZE_MAX)] = runs.PAGE_SIZE_DEFAULT,
) -> OutcomePageOut:
    run = await runs.get_run(session, context.organization.id, run_id)
    rows, next_cursor = await runs.list_outcomes(
        session,
        run,
        cursors=cursors_for(request, "sync-outcomes", run.id),
        outcome=outcome.value if outcome else None,
        cursor=cursor,
        limit=limit,
    )
    return OutcomePageOut(items=[OutcomeOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/flagged-members", response_model=FlaggedMemberPageOut, responses=_errors())
async def list_flagged_members(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    status: Annotated[FlagStatus | None, Query(description="Only flags with this status.")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=runs.PAGE_SIZE_MAX)] = 50,
) -> FlaggedMemberPageOut:
    rows, next_cursor = await flagged.list_flagged(
        session,
        context.organization.id,
        cursors=cursors_for(request, "flagged-members", context.organization.id),
        status=status.value if status else None,
        cursor=cursor,
        limit=limit,
    )
    return FlaggedMemberPageOut(items=[FlaggedMemberOut.of(f) for f in rows], next_cursor=next_cursor)


@router.post("/flagged-members/{flag_id}/invite", response_model=FlaggedMemberOut, responses=_errors(409))
async def invite_flagged_member(
    request: Request, context: MicrosoftAdmin, session: DbSession, flag_id: uuid.UUID
) -> FlaggedMemberOut:
    """Invite the person to the team (a single-use link in `invitationUrl`, shown only here)."""
    flag, issued = await flagged.invite_flagged(session, context.organization, flag_id, context.user)
    out = FlaggedMemberOut.of(flag)
    if issued is not None:
        out.invitation_url = public_link(request, issued.path)
    return out


@router.post("/flagged-members/{flag_id}/dismiss", response_model=FlaggedMemberOut, responses=_errors())
async def dismiss_flagged_member(
    context: MicrosoftAdmin, session: DbSession, flag_id: uuid.UUID
) -> FlaggedMemberOut:
    return FlaggedMemberOut.of(
        await flagged.dismiss_flagged(session, context.organization, flag_id, context.user)
    )


@router.post("/flagged-members/{flag_id}/restore", response_model=FlaggedMemberOut, responses=_errors(409))
async def restore_flagged_member(
    context: MicrosoftAdmin, session: DbSession, flag_id: uuid.UUID
) -> FlaggedMemberOut:
    """Undo a dismissal: the person is listed as flagged (`pending`) again."""
    return FlaggedMemberOut.of(
        await flagged.restore_flagged(session, context.organization, flag_id, context.user)
    )


@router.get("/settings", response_model=SyncSettingsOut, responses=_errors())
async def get_settings(context: MicrosoftAdmin) -> SyncSettingsOut:
    current = sync_settings.get_sync_settings(context.organization)
    return SyncSettingsOut(auto_sync=current.auto_sync, remove_departed=current.remove_departed)


@router.patch("/settings", response_model=SyncSettingsOut, responses=_errors())
async def patch_settings(
    context: MicrosoftAdmin, session: DbSession, body: SyncSettingsIn
) -> SyncSettingsOut:
    updated = await sync_settings.update_sync_settings(
        session,
        context.organization,
        context.user.id,
        auto_sync=body.auto_sync,
        remove_departed=body.remove_departed,
    )
    return SyncSettingsOut(auto_sync=updated.auto_sync, remove_departed=updated.remove_departed)
