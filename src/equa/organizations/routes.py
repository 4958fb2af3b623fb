"""HTTP API of organizations and their team members."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response, status

from equa.accounts.deps import CurrentUser
from equa.accounts.platform_admins import is_platform_admin
from equa.accounts.schemas import SessionOut, UserOut
from equa.accounts.sessions import start_session
from equa.accounts.throttle import lift_newcomers_block
from equa.deps import DbSession
from equa.errors import problem_responses
from equa.organizations.creation_policy import ensure_may_create_organization
from equa.organizations.deps import OrgAdmin, OrgMember
from equa.organizations.invitations import (
    accept_as_newcomer,
    accept_as_user,
    invite,
    open_invitation,
    pending_invitations,
    revoke_invitation,
)
from equa.organizations.schemas import (
    InvitationAcceptIn,
    InvitationCreatedOut,
    InvitationDetailsOut,
    InvitationOut,
    MemberAddIn,
    MemberOut,
    MemberUpdateIn,
    OrganizationCreateIn,
    OrganizationOut,
)
from equa.organizations.service import (
    change_role,
    create_organization,
    get_membership,
    list_members,
    organizations_of,
    remove_member,
)
from equa.settings import Settings

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
    "/{org_id}/members",
    response_model=InvitationCreatedOut,
    status_code=status.HTTP_201_CREATED,
    responses=ADMIN_ERRORS,
)
async def add(
    body: MemberAddIn, request: Request, context: OrgAdmin, session: DbSession
) -> InvitationCreatedOut:
    """Invite a person by address: a pending invitation with a single-use link, shown only in this answer.

    The answer is the same whether or not the address has an account; the person joins by opening the link.
    """
    issued = await invite(session, context.organization, str(body.email), body.role, context.user)
    return InvitationCreatedOut(
        **InvitationOut.of(issued.invitation).model_dump(), invitation_url=public_link(request, issued.path)
    )


@router.get("/{org_id}/invitations", response_model=list[InvitationOut], responses=ADMIN_ERRORS)
async def invitations(context: OrgAdmin, session: DbSession) -> list[InvitationOut]:
    """Pending invitations (the links themselves are never shown again)."""
    return [InvitationOut.of(i) for i in await pending_invitations(session, context.organization)]


@router.delete(
    "/{org_id}/invitations/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ADMIN_ERRORS
)
async def cancel_invitation(invitation_id: uuid.UUID, context: OrgAdmin, session: DbSession) -> Response:
    await revoke_invitation(session, context.organization, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


invitation_router = APIRouter(prefix="/api/v1/invitations", tags=["organizations"])
INVITATION_ERRORS = problem_responses(401, 403, 404, 409, 410, 422)
InvitationToken = Annotated[str, Path(min_length=8, max_length=128)]


def public_link(request: Request, path: str) -> str:
    """An absolute link: at EQUA_PUBLIC_URL when set, else at the address this request came to."""
    settings: Settings = request.app.state.settings
    if settings.public_url:
        return settings.public_link(path)
    return str(request.base_url).rstrip("/") + path


@invitation_router.get("/{token}", response_model=InvitationDetailsOut, responses=INVITATION_ERRORS)
async def read_invitation(token: InvitationToken, session: DbSession) -> InvitationDetailsOut:
    opened = await open_invitation(session, token)
    return InvitationDetailsOut(
        organization_name=opened.organization.name,
        email=opened.invitation.email,
        role=opened.invitation.role,
        expires_at=opened.invitation.expires_at,
    )


@invitation_router.post(
    "/{token}", response_model=SessionOut, status_code=status.HTTP_201_CREATED, responses=INVITATION_ERRORS
)
async def accept_new_account(
    token: InvitationToken,
    body: InvitationAcceptIn,
    request: Request,
    response: Response,
    session: DbSession,
    background: BackgroundTasks,
) -> SessionOut:
    """A newcomer accepts: the account is created with their own name and password, and they are signed in."""
    user, _ = await accept_as_newcomer(session, token, body.display_name, body.password)
    csrf_token = await start_session(request, response, user, session)
    lift_newcomers_block(request, background, user.email)
    platform_admin = is_platform_admin(user, request.app.state.settings)  # EQUA_PLATFORM_ADMINS may name them
    return SessionOut(user=UserOut.of(user, platform_admin=platform_admin), csrf_token=csrf_token)


@invitation_router.post("/{token}/accept", response_model=MemberOut, responses=INVITATION_ERRORS)
async def accept_signed_in(token: InvitationToken, user: CurrentUser, session: DbSession) -> MemberOut:
    """Someone who has an account, signed in with the invited address, joins the organization."""
    return MemberOut.of(await accept_as_user(session, token, user))


@router.patch("/{org_id}/members/{user_id}", response_model=MemberOut, responses=ADMIN_ERRORS)
async def update(
    user_id: uuid.UUID, body: MemberUpdateIn, context: OrgAdmin, session: DbSession
) -> MemberOut:
    return MemberOut.of(await change_role(session, context.organization, user_id, body.role))


@router.delete("/{org_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ADMIN_ERRORS)
async def remove(user_id: uuid.UUID, context: OrgAdmin, session: DbSession) -> Response:
    await remove_member(session, context.organization, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
