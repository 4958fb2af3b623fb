"""Page routes of the Microsoft 365 section's link state: status card, link (by id or from the picker), create,
unlink. They answer HTML partials for htmx and call the same services as the JSON API, which stays for API clients.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from equa.db.session import release_connection
from equa.deps import DbSession
from equa.errors import AppError
from equa.microsoft import groups, vocabulary
from equa.microsoft.deps import Graph, MicrosoftAdmin, Scope, require_microsoft_enabled
from equa.microsoft.graph import GraphError
from equa.microsoft.routes import Cache
from equa.microsoft.schemas import CreateGroupIn
from equa.pagination import cursors_for
from equa.plain_words import NOT_A_GROUP_ID
from equa.web.microsoft_partials import (
    field_errors,
    partial,
    partial_context,
    preview_after_link,
    problem_fields,
    problem_of,
    section,
    status_card,
)

PREFIX = "/organizations/{org_id}/settings/microsoft"
router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(require_microsoft_enabled)])

LINK_BLOCK = "#ms-link-block"
CREATE_BLOCK = "#ms-create-block"


@router.get("/status")
async def status(request: Request, context: MicrosoftAdmin, session: DbSession, cache: Cache) -> HTMLResponse:
    graph = getattr(request.app.state, "graph", None)
    card = await status_card(request, session, context, graph, cache)
    return partial(request, "status.html", partial_context(request, context, **card))


@router.post("/link")
async def link(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    scope: Scope,
    group_id: Annotated[str, Form(alias="groupId", max_length=256)] = "",
) -> HTMLResponse:
    def refused(errors: dict[str, str], problem: AppError | None, code: int) -> HTMLResponse:
        page = partial_context(request, context, errors=errors, values={"groupId": group_id}, problem=problem)
        return partial(request, "link_form.html", page, status_code=code, retarget=LINK_BLOCK)

    if not group_id.strip():
        return refused({"groupId": "Enter the group's ID."}, None, 422)
    try:
        parsed = uuid.UUID(group_id.strip())
    except ValueError:
        return refused({"groupId": NOT_A_GROUP_ID}, None, 422)
    await release_connection(session)
    try:
        result = await groups.link_group(
            session, graph, context.organization, context.user, parsed, scope=scope
        )
    except (AppError, GraphError) as error:
        problem = await problem_of(request, session, error)
        return refused({}, problem, problem.status)
    cache.forget(graph, str(parsed))
    run = await preview_after_link(session, context)
    return section(request, context, f"Linked to “{result.group.get('displayName') or parsed}”.", run=run)


@router.post("/create")
async def create(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    scope: Scope,
    display_name: Annotated[str, Form(alias="displayName", max_length=1024)] = "",
    description: Annotated[str, Form(max_length=4096)] = "",
    mail_nickname: Annotated[str, Form(alias="mailNickname", max_length=256)] = "",
    idempotency_key: Annotated[str, Form(alias="idempotencyKey", max_length=200)] = "",
) -> HTMLResponse:
    values = {"displayName": display_name, "description": description, "mailNickname": mail_nickname}

    def refused(
        errors: dict[str, str], problem: AppError | None, code: int, *, same_key: bool
    ) -> HTMLResponse:
        # A refusal gets a new key (the next submission is a new attempt); a failure of Microsoft 365 keeps it, so
        # submitting again adopts a group the lost attempt may have created instead of making a second one.
        key = idempotency_key if same_key else str(uuid.uuid4())
        page = partial_context(request, context, errors=errors, values=values, problem=problem, key=key)
        return partial(request, "create_form.html", page, status_code=code, retarget=CREATE_BLOCK)

    if not display_name.strip():
        return refused({"displayName": "Enter a name for the group."}, None, 422, same_key=False)
    try:
        body = CreateGroupIn.model_validate(
            {key: value.strip() for key, value in values.items() if value.strip()}
        )
    except ValidationError as invalid:
        return refused(field_errors(invalid), None, 422, same_key=False)
    await release_connection(session)
    try:
        result = await groups.create_group(
            session,
            graph,
            context.organization,
            context.user,
            display_name=body.display_name,
            description=body.description,
            mail_nickname=body.mail_nickname,
            idempotency_key=idempotency_key or None,
            scope=scope,
            daily_limit=request.app.state.settings.group_create_limit,
        )
    except (AppError, GraphError) as error:
        problem = await problem_of(request, session, error)
        at_field = problem_fields(problem)
        if at_field:
            return refused(at_field, None, problem.status, same_key=False)
        return refused({}, problem, problem.status, same_key=problem.status >= 500)
    if not result.replayed:
        cache.remember_created(graph, result.group)
    run = await preview_after_link(session, context)
    return section(
        request,
        context,
        f"Created the private group “{result.group.get('displayName')}” and linked it.",
        run=run,
    )


@router.get("/nickname")
async def nickname(
    context: MicrosoftAdmin,
    display_name: Annotated[str, Query(alias="displayName", max_length=1024)] = "",
    mail_nickname: Annotated[str, Query(alias="mailNickname", max_length=256)] = "",
) -> HTMLResponse:
    """The create form's preview of the mail nickname, by the service's own rule."""
    return HTMLResponse(
        vocabulary.nickname_preview(display_name, mail_nickname), headers={"Cache-Control": "no-store"}
    )


@router.delete("/link")
async def unlink(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    cache: Cache,
    group_name: Annotated[str, Query(alias="groupName", max_length=256)] = "",
) -> HTMLResponse:
    """Forget the link; the group itself stays in Microsoft 365. `groupName` is the name the status card showed."""
    group_id = await groups.unlink_group(session, context.organization, context.user)
    cache.forget(graph, group_id)
    name = f"“{group_name.strip()}”" if group_name.strip() else "the group"
    return section(request, context, f"Unlinked {name}. The group still exists in Microsoft 365.")


@router.post("/clear-missing")
async def clear_missing(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: Graph, cache: Cache, scope: Scope
) -> HTMLResponse:
    """Reading the group clears a link to a group deleted in Microsoft 365; the section then offers link and create."""
    group_id = groups.linked_group_id(context.organization)
    restorable = False
    try:
        await groups.group_details(session, graph, context.organization, context.user, scope=scope)
    except groups.GroupMissing as missing:
        cache.forget(graph, group_id)
        restorable = missing.restorable
    except (AppError, GraphError) as error:
        problem = await problem_of(request, session, error)
        page = partial_context(request, context, problem=problem)
        return partial(request, "problem.html", page, status_code=problem.status)
    return section(
        request,
        context,
        "The link to the deleted group was cleared. Link or create another group.",
        restore=restorable,
    )


@router.post("/restore-group")
async def restore_group(
    request: Request, context: MicrosoftAdmin, session: DbSession, graph: Graph, cache: Cache, scope: Scope
) -> HTMLResponse:
    """The missing-group notice's Restore button: the deleted group back from deleted items, and linked again."""
    try:
        group = await groups.restore_group(session, graph, context.organization, context.user, scope=scope)
    except (AppError, GraphError) as error:
        problem = await problem_of(request, session, error)
        page = partial_context(request, context, problem=problem)
        return partial(request, "problem.html", page, status_code=problem.status)
    cache.forget(graph, str(group["id"]))
    name = group.get("displayName")
    label = f"“{name.strip()}”" if isinstance(name, str) and name.strip() else "the group"
    return section(
        request, context, f"Restored {label} from Microsoft 365's deleted items and linked it again."
    )


@router.get("/groups")
async def picker(
    request: Request,
    context: MicrosoftAdmin,
    session: DbSession,
    graph: Graph,
    scope: Scope,
    search: Annotated[str, Query(max_length=256)] = "",
) -> HTMLResponse:
    """The picker's results: only groups this organization may link, each saying whether it can be, and why not."""
    query = search.strip()
    page = partial_context(request, context, query=query, choices=[], more=False, problem=None)
    if not query and scope.tenant_wide:
        return partial(request, "picker.html", page | {"idle": True})
    await release_connection(session)
    try:
        found = await groups.search_groups(
            session,
            graph,
            context.organization,
            scope=scope,
            cursors=cursors_for(request, "group-search", context.organization.id),
            search=query or None,
            cursor=None,
            limit=groups.SEARCH_PAGE_SIZE,
        )
    except (AppError, GraphError) as error:
        page["problem"] = await problem_of(request, session, error)
        return partial(request, "picker.html", page)
    page |= {"choices": found.items, "more": found.next_cursor is not None}
    return partial(request, "picker.html", page)
