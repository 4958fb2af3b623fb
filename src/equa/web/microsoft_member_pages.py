"""Page routes of a linked group: member rows (list, add, remove), the sync run and its result, the flagged list and
the sync settings form. HTML partials for htmx, over the same services as the JSON API.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse

from equa.accounts.models import normalize_email
from equa.db.session import release_connection
from equa.deps import DbSession
from equa.errors import AppError
from equa.microsoft import groups, history_repository, repository
from equa.microsoft.deps import Graph, MicrosoftAdmin, Scope, require_microsoft_enabled
from equa.microsoft.graph import GraphError
from equa.microsoft.models import FlagStatus, SyncOutcome, SyncRun
from equa.microsoft.routes import Cache
from equa.microsoft.sync import flagged, runs, sync_settings
from equa.microsoft.vocabulary import ACTIVE_RUN_STATES, OUTCOME_ORDER
from equa.organizations.invitations import pending_invitations
from equa.organizations.routes import public_link
from equa.pagination import cursors_for
from equa.web.microsoft_partials import (
    EXCLUSIONS_CHANGED,
    FLAG_DECIDED,
    FLAGS_CHANGED,
    MEMBERS_CHANGED,
    partial,
    partial_context,
    problem_of,
    section,
    status_card,
)

PREFIX = "/organizations/{org_id}/settings/microsoft"
router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(require_microsoft_enabled)])

MEMBERS_PAGE = 25
OUTCOME_PAGE = 200
OUTCOME_PAGES_SHOWN = 20
GROUP_DELETED = "The linked group was deleted in Microsoft 365, so its link was cleared. Link or create another group."  # a result lists at most 4,000 people; the API has them all


async def _fresh_status(
    request: Request, session: DbSession, context: MicrosoftAdmin, graph: Graph, cache: Cache
) -> dict[str, Any]:
    """The status card, sent along out of band after an action that changed what it shows."""
    return {"status_oob": await status_card(request, session, context, graph, cache, recount=True)}


def _address_of(member: groups.GroupMember) -> str:
    address = member.mail or member.user_principal_name or ""
    return normalize_email(address) if address else ""


@router.get("/members")
async def members(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    scope: Scope,
    cache: Cache,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
    shown: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    page = partial_context(
        request, context, members=[], next_cursor=None, shown=shown, problem=None, more=bool(cursor)
    )
    group_id = groups.linked_group_id(context.organization)
    await release_connection(session)
    try:
        found = await groups.list_group_members(
            session,
            graph,
            context.organization,
            context.user,
            scope=scope,
            cursors=cursors_for(request, "group-members", context.organization.id),
            cursor=cursor,
            limit=MEMBERS_PAGE,
        )
    except groups.GroupMissing as missing:
        # The service cleared the link to a group deleted in Microsoft 365: the section now offers link and create,
        # and to restore a group Microsoft 365 still keeps.
        cache.forget(graph, group_id)
        return section(request, context, GROUP_DELETED, restore=missing.restorable)
    except (AppError, GraphError) as error:
        page["problem"] = await problem_of(request, session, error)
        return partial(request, "members.html", page)
    # Graph's member pages come in no useful order; each page shown is sorted by name (then address).
    ordered = sorted(
        found.items,
        key=lambda m: ((m.display_name or "").casefold(), (m.mail or m.user_principal_name or "").casefold()),
    )
    invited = {i.email_normalized for i in await pending_invitations(session, context.organization)}
    try:
        owners = await groups.group_owner_ids(graph, context.organization)
    except GraphError:
        owners = set()  # the members are still worth showing; only the owner marks are missing
    page |= {
        "hand_added": await repository.hand_added_ids(session, context.organization.id, group_id or ""),
        "invited": {m.id for m in ordered if _address_of(m) in invited},
        "members": ordered,
        "owners": owners,
        "next_cursor": found.next_cursor,
        "shown": shown + len(found.items),
        "me": context.user.id,
    }
    return partial(request, "members.html", page)


@router.post("/members")
async def add_member(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    scope: Scope,
    email: Annotated[str, Form(max_length=1024)] = "",
) -> HTMLResponse:
    def answer(code: int, **extra: Any) -> HTMLResponse:
        page = partial_context(request, context, errors={}, values={}, problem=None) | extra
        return partial(request, "add_member.html", page, status_code=code, trigger=trigger)

    trigger: list[str] = []
    address = email.strip()
    if not address:
        return answer(422, errors={"email": "Enter the person's email address."}, values={"email": email})
    try:
        address = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as invalid:
        return answer(
            422, errors={"email": f"That is not an email address: {invalid}"}, values={"email": email}
        )
    await release_connection(session)
    cache.expire(graph, groups.linked_group_id(context.organization))
    try:
        change = await groups.add_group_member(
            session, graph, context.organization, context.user, scope=scope, email=address
        )
    except (AppError, GraphError) as error:
        problem = await problem_of(request, session, error)
        return answer(problem.status, values={"email": email}, problem=problem)
    who = change.member.display_name or address
    notice = (
        f"Added {who} to the group."
        if change.added
        else f"{who} already is a member of the group; nothing changed."
    )
    if change.added:  # nothing changed: the table stays as it is (a reload would race the admin's next click)
        trigger.append(MEMBERS_CHANGED)
    return answer(
        201 if change.added else 200,
        ms_notice=notice,
        **await _fresh_status(request, session, context, graph, cache),
    )


@router.delete("/members/{member_id}")
async def remove_member(
    request: Request,
    member_id: uuid.UUID,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    scope: Scope,
    name: Annotated[str, Query(max_length=512)] = "",
) -> HTMLResponse:
    await release_connection(session)
    cache.expire(graph, groups.linked_group_id(context.organization))
    try:
        await groups.remove_group_member(
            session, graph, context.organization, context.user, member_id, scope=scope
        )
    except (AppError, GraphError) as error:
        # The row stays; the problem shows in a row right below it.
        problem = await problem_of(request, session, error)
        page = partial_context(request, context, problem=problem)
        response = partial(request, "member_removed.html", page, status_code=problem.status)
        response.headers["HX-Reswap"] = "afterend"
        return response
    # The answer takes the removed member's row, so the result shows where the admin clicked.
    page = partial_context(
        request,
        context,
        problem=None,
        ms_notice=f"Removed {name or 'the person'} from the group.",
        **await _fresh_status(request, session, context, graph, cache),
    )
    return partial(request, "member_removed.html", page, trigger=[EXCLUSIONS_CHANGED])


@router.post("/sync")
async def start_sync(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    scope: Scope,
    cache: Cache,
    dry_run: Annotated[bool, Form(alias="dryRun")] = False,
) -> HTMLResponse:
    """Start a sync or a preview (or join the one already queued or running) and show its progress."""
    try:
        if context.organization.microsoft_group is not None:
            await scope.check(session, graph, context.organization.id, context.organization.microsoft_group)
        settings = request.app.state.settings
        run = await runs.request_sync(
            session,
            context.organization,
            context.user,
            dry_run,
            "web",
            lease_seconds=settings.sync_lease_seconds,
            min_interval=settings.sync_min_interval_seconds,
        )
    except (AppError, GraphError) as error:
        problem = await problem_of(request, session, error)
        return partial(request, "problem.html", partial_context(request, context, problem=problem))
    # Committed now: the task reaches the broker on commit, and the page's next poll must see the run.
    await session.commit()
    return await _run_answer(request, context, session, graph, cache, run)


@router.get("/sync-runs/{run_id}")
async def sync_run(
    request: Request,
    run_id: uuid.UUID,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    refresh: bool = False,
) -> HTMLResponse:
    """A run's progress while it is active (the partial polls this route), then its result. `refresh` re-renders a
    shown result after a flag was decided (no events then: the parts that decision changed reload themselves)."""
    try:
        run = await runs.get_run(session, context.organization.id, run_id)
    except AppError as error:
        return partial(request, "problem.html", partial_context(request, context, problem=error))
    return await _run_answer(request, context, session, graph, cache, run, quiet=refresh)


async def _run_answer(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    run: SyncRun,
    *,
    quiet: bool = False,
) -> HTMLResponse:
    if run.status in ACTIVE_RUN_STATES:
        return partial(request, "run.html", partial_context(request, context, run=run, active=True))
    outcomes: list[SyncOutcome] = []
    cursor: str | None = None
    truncated = True
    for _ in range(OUTCOME_PAGES_SHOWN):
        rows, cursor = await runs.list_outcomes(
            session,
            run,
            cursors=cursors_for(request, "sync-outcomes", run.id),
            cursor=cursor,
            limit=OUTCOME_PAGE,
        )
        outcomes.extend(rows)
        if cursor is None:
            truncated = False
            break
    listed: dict[str, list[SyncOutcome]] = {}
    for row in outcomes:
        listed.setdefault(row.outcome, []).append(row)
    counts = run.counts or {}
    chips = [(key, int(counts[key])) for key in OUTCOME_ORDER if counts.get(key)]
    # A flagged person decided on since (invited, dismissed) is shown so, not as still waiting for a decision.
    decided = await repository.flag_statuses(
        session,
        context.organization.id,
        run.group_id,
        [row.directory_id for row in listed.get("flagged", []) if row.directory_id],
    )
    page = partial_context(
        request,
        context,
        run=run,
        active=False,
        listed=listed,
        truncated=truncated,
        chips=chips,
        decided=decided,
    )
    if quiet:
        return partial(request, "run.html", page)
    trigger = [FLAGS_CHANGED]
    if not run.dry_run:
        trigger.append(MEMBERS_CHANGED)
        page |= await _fresh_status(request, session, context, graph, cache)
    return partial(request, "run.html", page, trigger=trigger)


async def _flagged_list(
    request: Request, context: MicrosoftAdmin, session: DbSession, **extra: Any
) -> HTMLResponse:
    lists: dict[str, list[Any]] = {}
    for status in (FlagStatus.PENDING, FlagStatus.DISMISSED):
        lists[status.value], _more = await flagged.list_flagged(
            session,
            context.organization.id,
            cursors=cursors_for(request, "flagged-members", context.organization.id),
            status=status.value,
            limit=runs.PAGE_SIZE_MAX,
        )
    preview: list[SyncOutcome] = []
    if not lists["pending"] and not lists["dismissed"]:
        preview = await _flagged_by_preview(request, context, session)
    page = partial_context(
        request,
        context,
        flags=lists["pending"],
        dismissed=lists["dismissed"],
        preview_flags=preview,
        problem=None,
    )
    return partial(request, "flagged.html", page | extra)


async def _flagged_by_preview(
    request: Request, context: MicrosoftAdmin, session: DbSession
) -> list[SyncOutcome]:
    """Before the linked group's first sync, who its last preview would flag (a preview stores no flags): the
    flagged list then agrees with the members marked "Not in the team"."""
    group_id = groups.linked_group_id(context.organization)
    if group_id is None:
        return []
    organization_id = context.organization.id
    if (
        await history_repository.last_run(session, organization_id, dry_run=False, group_id=group_id)
        is not None
    ):
        return []
    preview = await history_repository.last_run(session, organization_id, dry_run=True, group_id=group_id)
    if preview is None or preview.status in ACTIVE_RUN_STATES:
        return []
    rows, _more = await runs.list_outcomes(
        session,
        preview,
        cursors=cursors_for(request, "sync-outcomes", preview.id),
        outcome="flagged",
        limit=runs.PAGE_SIZE_MAX,
    )
    return rows


@router.get("/flagged")
async def flagged_members(request: Request, context: MicrosoftAdmin, session: DbSession) -> HTMLResponse:
    return await _flagged_list(request, context, session)


@router.post("/flagged/{flag_id}/{decision}")
async def decide_flagged(
    request: Request, flag_id: uuid.UUID, decision: str, context: MicrosoftAdmin, session: DbSession
) -> HTMLResponse:
    """Invite a flagged person to the team (the single-use link is shown once, here) or dismiss them."""
    try:
        if decision == "invite":
            flag, issued = await flagged.invite_flagged(session, context.organization, flag_id, context.user)
            name = flag.display_name or flag.email or flag.directory_id
            notice = (
                f"{name} is invited. Send them this link (it works once, for 7 days, and is not shown again): "
                f"{public_link(request, issued.path)}"
                if issued is not None
                else f"{name} is already on the Equa team."
            )
        elif decision == "dismiss":
            flag = await flagged.dismiss_flagged(session, context.organization, flag_id, context.user)
            notice = f"{flag.display_name or flag.email or flag.directory_id} is no longer flagged."
        elif decision == "restore":
            flag = await flagged.restore_flagged(session, context.organization, flag_id, context.user)
            notice = f"{flag.display_name or flag.email or flag.directory_id} is flagged again."
        else:
            raise AppError(404, "not_found", "Nothing exists at this address.", None)
    except AppError as error:
        problem = await problem_of(request, session, error)
        return await _flagged_list(request, context, session, problem=problem)
    # The members table (which marks people invited) and a shown sync result change with the decision.
    response = await _flagged_list(request, context, session, ms_notice=notice)
    response.headers["HX-Trigger"] = f"{MEMBERS_CHANGED}, {FLAG_DECIDED}"
    return response


@router.post("/settings")
async def save_settings(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    auto_sync: Annotated[bool, Form(alias="autoSync")] = False,
    remove_departed: Annotated[bool, Form(alias="removeDeparted")] = False,
) -> HTMLResponse:
    saved = await sync_settings.update_sync_settings(
        session, context.organization, context.user.id, auto_sync=auto_sync, remove_departed=remove_departed
    )
    page = partial_context(request, context, saved=saved, ms_notice="Sync settings saved.")
    return partial(request, "settings_form.html", page)
