"""HTTP API of organizations and their team members."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from equa.accounts.deps import CurrentUser
from equa.db.session import DbSession
from equa.errors import problem_responses
from equa.organizations.creation_policy import ensure_may_create_organization
from equa.organizations.deps import OrgAdmin, OrgMember
from equa.organizations.schemas import (
    MemberAddIn,
    MemberOut,
    MemberUpdateIn,
    OrganizationCreateIn,
    OrganizationOut,
)
from equa.organizations.service import (
    add_member,
    change_role,
    create_organization,
    get_membership,
    list_members,
    organizations_of,
    remove_member,
)

router = APIRouter(prefix="/api/v1/organizations", tags=["organizations"])

# Not a member and no such organization answer the same 404; members asking for admin operations get 403.
MEMBER_ERRORS = problem_responses(401, 404, 422)
ADMIN_ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.post(
    "",
    response_model=OrganizationOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 422),
)
async def create(
    body: OrganizationCreateIn, request: Request, user: CurrentUser, session: DbSession
) -> OrganizationOut:
    ensure_may_create_organization(user, request.app.state.settings)
    organization = await create_organization(session, body.name, user)
    membership = await get_membership(session, organization.id, user.id)
    assert membership is not None
    return OrganizationOut.of(organization, membership)


@router.get("", response_model=list[OrganizationOut], responses=problem_responses(401))
async def list_mine(user: CurrentUser, session: DbSession) -> list[OrganizationOut]:
    return [OrganizationOut.of(org, membership) for org, membership in await organizations_of(session, user)]


@router.get("/{org_id}", response_model=OrganizationOut, responses=MEMBER_ERRORS)
async def read(context: OrgMember) -> OrganizationOut:
    return OrganizationOut.of(context.organization, context.membership)


@router.get("/{org_id}/members", response_model=list[MemberOut], responses=MEMBER_ERRORS)
async def members(context: OrgMember, session: DbSession) -> list[MemberOut]:
    return [MemberOut.of(m) for m in await list_members(session, context.organization)]


@router.post(
    "/{org_id}/members", response_model=MemberOut, status_code=status.HTTP_201_CREATED, responses=ADMIN_ERRORS
)
async def add(body: MemberAddIn, context: OrgAdmin, session: DbSession) -> MemberOut:
    membership = await add_member(
        session, context.organization, str(body.email), body.role, body.display_name
    )
    return MemberOut.of(membership)


@router.patch("/{org_id}/members/{user_id}", response_model=MemberOut, responses=ADMIN_ERRORS)
async def update(
    user_id: uuid.UUID, body: MemberUpdateIn, context: OrgAdmin, session: DbSession
) -> MemberOut:
    return MemberOut.of(await change_role(session, context.organization, user_id, body.role))


@router.delete("/{org_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ADMIN_ERRORS)
async def remove(user_id: uuid.UUID, context: OrgAdmin, session: DbSession) -> Response:
    await remove_member(session, context.organization, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
