"""How a Graph failure reaches a user: one mapping from GraphError classes to problem+json (never a 500)."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from equa.errors import AppError, problem_response
from equa.microsoft.graph import (
    GraphAlreadyExists,
    GraphAuthenticationFailed,
    GraphError,
    GraphGuestBlocked,
    GraphInvalidRequest,
    GraphNotFound,
    GraphPermissionDenied,
    GraphThrottled,
    GraphTransient,
    GraphUnmanageable,
)
from equa.microsoft.graph.errors import refuses_the_app
from equa.microsoft.tenants.problems import consent_revoked
from equa.settings import Settings

DEFAULT_RETRY_AFTER_SECONDS = 30


def graph_problem(error: GraphError, settings: Settings) -> AppError:
    """The problem+json a user sees for `error`; the Graph request-id goes along for support cases."""
    extra: dict[str, object] = {}
    if error.request_id:
        extra["microsoftRequestId"] = error.request_id
    if error.code:
        extra["microsoftCode"] = error.code
    headers: dict[str, str] = {}

    if settings.multi_tenant and refuses_the_app(error):
        # The organization's tenant no longer lets the app in: the answer is the reconnect action.
        revoked = consent_revoked(None)
        revoked.extra.update(extra)
        return revoked
    if isinstance(error, GraphThrottled):
        wait = math.ceil(error.retry_after) if error.retry_after else DEFAULT_RETRY_AFTER_SECONDS
        headers["Retry-After"] = str(max(1, wait))
        return AppError(
            503,
            "microsoft_throttled",
            "Microsoft 365 is limiting requests from this service right now.",
            f"Try again in {headers['Retry-After']} seconds.",
            headers=headers,
            extra=extra,
        )
    if isinstance(error, GraphTransient):
        # The sign-in endpoint's outage hold and similar known waits are better than a guess.
        wait = math.ceil(error.retry_after) if error.retry_after else DEFAULT_RETRY_AFTER_SECONDS
        headers["Retry-After"] = str(max(1, wait))
        return AppError(
            503,
            "microsoft_unavailable",
            f"Microsoft 365 could not be reached or did not answer in time. {error.message}",
            error.action or "Try again in a minute; check the Microsoft 365 service health if it persists.",
            headers=headers,
            extra=extra,
        )
    if isinstance(error, GraphAuthenticationFailed):
        return AppError(
            502,
            "microsoft_auth_failed",
            f"This service could not sign in to Microsoft 365. {error.message}",
            error.action or "Check the MS_AUTH_* settings of the service.",
            extra=extra,
        )
    if isinstance(error, GraphGuestBlocked):
        return AppError(
            422,
            "microsoft_guest_blocked",
            "The tenant's policy does not allow guest users in this group.",
            error.action
            or "Ask a tenant administrator to allow guests in Microsoft 365 groups, or add a member account.",
            extra=extra,
        )
    if isinstance(error, GraphPermissionDenied):
        consent_url = settings.admin_consent_url()
        if consent_url:
            extra["adminConsentUrl"] = consent_url
        action = error.action or "A tenant administrator must grant the app its Microsoft Graph permissions."
        if consent_url and consent_url not in action:
            action = f"{action} Admin consent: {consent_url}"
        return AppError(
            502,
            "microsoft_permission_missing",
            "The app is not allowed to do this in Microsoft 365 (missing permission or admin consent).",
            action,
            extra=extra,
        )
    if isinstance(error, GraphUnmanageable):
        return AppError(
            422,
            "microsoft_group_unmanageable",
            error.message,
            error.action
            or "Link a Microsoft 365 group or a security group with assigned membership instead.",
            extra=extra,
        )
    if isinstance(error, GraphNotFound):
        return AppError(
            404,
            "microsoft_not_found",
            error.message,
            error.action or "Check the identifier; the object may have been deleted in Microsoft 365.",
            extra=extra,
        )
    if isinstance(error, GraphAlreadyExists):
        return AppError(409, "microsoft_conflict", error.message, error.action, extra=extra)
    if isinstance(error, GraphInvalidRequest):
        return AppError(
            422,
            "microsoft_invalid_request",
            f"Microsoft 365 refused the request: {error.message}",
            error.action or "Check the values sent and try again.",
            extra=extra,
        )
    return AppError(
        502,
        "microsoft_error",
        f"Microsoft 365 answered with an error: {error.message}",
        error.action or "Try again; if it persists, give the request id to support.",
        extra=extra,
    )


def install_graph_error_handler(app: FastAPI) -> None:
    """A GraphError that no service turned into something more specific still reaches the user as problem+json."""

    @app.exception_handler(GraphError)
    async def _graph_error(request: Request, exc: GraphError) -> JSONResponse:
        return problem_response(graph_problem(exc, request.app.state.settings))
