"""AppError and the one handler that renders every error as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from equa.plain_words import api_detail, field_words

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("equa.errors")


class AppError(Exception):
    """An error a user can act on: HTTP status, stable code, message, and what to do next."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        action: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.action = action
        self.headers = headers or {}
        self.extra = extra or {}

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://equa.example/problems/{self.code}",
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.message,
            "code": self.code,
            "action": self.action,
        }
        body.update(self.extra)
        return body


_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    502: "Microsoft 365 error",
    503: "Service unavailable",
    504: "Microsoft 365 did not answer in time",
}


class Problem(BaseModel):
    """The OpenAPI shape of every error: RFC 9457 problem+json plus `code` and `action` (and extras like `errors`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    action: str | None = None


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` declaring the problem+json answers an operation gives, so clients and fuzzers know them.

    Descriptions default to the status's title; override one with a keyword like `s404="No such organization"`.
    """
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(f"s{status}", _TITLES.get(status, "Error")),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def problem_response(error: AppError) -> JSONResponse:
    return JSONResponse(
        error.to_problem(), status_code=error.status, headers=error.headers, media_type=PROBLEM_JSON
    )


def not_found(what: str = "resource") -> AppError:
    return AppError(404, "not_found", f"The {what} does not exist.", "Check the address or identifier.")


# PostgreSQL: deadlock_detected, serialization_failure, lock_not_available.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


def is_transient_database_conflict(exc: DBAPIError) -> bool:
    """A conflict between concurrent transactions that a repeat of the request resolves."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def validation_problem(exc: RequestValidationError) -> AppError:
    """422 with every invalid field in `errors` (pydantic's message, and the same in plain words as `detail`);
    the problem's own `detail` is the first field's plain sentence."""
    errors = []
    details = []
    for err in exc.errors():
        field = _field_name(tuple(err.get("loc", ())))
        message = str(err.get("msg", "is invalid"))
        error_type = str(err.get("type", ""))
        words = field_words(field, error_type, message, err.get("ctx"))
        errors.append({"field": field, "message": message, "detail": words})
        details.append(api_detail(field, error_type, words))
    return AppError(
        422,
        "validation_failed",
        details[0] if details else "request: This request is not valid.",
        "Correct the highlighted field and send the request again.",
        extra={"errors": errors},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "not_authenticated"}.get(
            exc.status_code, "http_error"
        )
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404:
            detail = "Nothing exists at this address."
        return problem_response(
            AppError(exc.status_code, code, detail, None, headers=dict(exc.headers or {}))
        )

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_transient_database_conflict(exc):
            # Two requests collided in the database (a deadlock or serialization failure on PostgreSQL, a
            # busy SQLite file); the request was rolled back whole, so repeating it is safe.
            log.warning("database conflict on %s %s; answered 503", request.method, request.url.path)
            return problem_response(
                AppError(
                    503,
                    "database_busy",
                    "The request collided with another change and was not applied.",
                    "Send it again in a moment.",
                    headers={"Retry-After": "1"},
                )
            )
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never show internals; the log line carries the traceback for operators.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            AppError(
                500,
                "internal_error",
                "Something went wrong on our side.",
                "Try again; if it persists, contact support.",
            )
        )
