"""HTTP API of accounts: browser session, the current user, API tokens."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from equa.accounts.deps import CurrentUser
from equa.accounts.platform_admins import is_platform_admin
from equa.accounts.schemas import LoginIn, SessionOut, TokenCreatedOut, TokenCreateIn, TokenOut, UserOut
from equa.accounts.service import authenticate
from equa.accounts.sessions import end_session, start_session
from equa.accounts.throttle import MustWait, client_address, sign_in_throttle, sign_in_throttled
from equa.accounts.tokens import create_api_token, list_api_tokens, revoke_api_token
from equa.deps import DbSession
from equa.errors import AppError, problem_responses

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post(
    "/session",
    response_model=SessionOut,
    response_model_by_alias=True,
    responses=problem_responses(401, 422, 429),
)
async def sign_in(body: LoginIn, request: Request, response: Response, session: DbSession) -> SessionOut:
    throttle = sign_in_throttle(request)
    keys = throttle.keys_for(body.email, client_address(request))
    try:
        async with throttle.attempt(keys):
            user = await authenticate(session, body.email, body.password)
            if user is None:
                await throttle.failed(keys)
    except MustWait as wait:
        raise sign_in_throttled(wait.seconds) from None
    if user is None:
        raise AppError(
            401,
            "invalid_credentials",
            "The email or password is not correct.",
            "Check both and try again.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    await throttle.succeeded(keys)
    csrf_token = await start_session(request, response, user, session)
    platform_admin = is_platform_admin(user, request.app.state.settings)
    return SessionOut(user=UserOut.of(user, platform_admin=platform_admin), csrf_token=csrf_token)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(request: Request, session: DbSession) -> Response:
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    await end_session(request, response, session)
    return response


@router.get("/me", response_model=UserOut, responses=problem_responses(401))
async def me(request: Request, user: CurrentUser) -> UserOut:
    return UserOut.of(user, platform_admin=is_platform_admin(user, request.app.state.settings))


@router.post(
    "/me/tokens",
    response_model=TokenCreatedOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 422),
)
async def create_token(
    request: Request, body: TokenCreateIn, user: CurrentUser, session: DbSession
) -> TokenCreatedOut:
    row, token = await create_api_token(session, user, body.name)
    max_age = request.app.state.settings.api_token_max_age
    return TokenCreatedOut(**TokenOut.of(row, max_age).model_dump(), token=token)


@router.get("/me/tokens", response_model=list[TokenOut], responses=problem_responses(401))
async def list_tokens(request: Request, user: CurrentUser, session: DbSession) -> list[TokenOut]:
    max_age = request.app.state.settings.api_token_max_age
    return [TokenOut.of(t, max_age) for t in await list_api_tokens(session, user)]


@router.delete(
    "/me/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
)
async def revoke_token(token_id: uuid.UUID, user: CurrentUser, session: DbSession) -> Response:
    await revoke_api_token(session, user, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
