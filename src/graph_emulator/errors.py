"""Graph error bodies and the exception the request handlers raise to produce them."""

from __future__ import annotations

import datetime as dt
from typing import Any

# Messages Microsoft Graph returns, word for word (see shared/graph-reference).
NOT_FOUND = "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
INVALID_ID = "Invalid object identifier '{id}'."
INSUFFICIENT_PRIVILEGES = "Insufficient privileges to complete the operation."
ALREADY_MEMBER = (
    "One or more added object references already exist for the following modified properties: 'members'."
)
ALREADY_OWNER = (
    "One or more added object references already exist for the following modified properties: 'owners'."
)
REPLICATION_LAG = "The source resource object or one of the objects being referenced don't exist."
GUEST_BLOCKED = "Guests users are not allowed to join this Unified Group due to policy setting."
COUNT_UNSUPPORTED = "$count is not currently supported."
SEARCH_NEEDS_CONSISTENCY = (
    "Request with $search query parameter only works through MSGraph with a special request header: "
    "'ConsistencyLevel: eventual'"
)
UNSUPPORTED_QUERY = "Unsupported Query."
NOT_INDEXED = "The request uses a filter property that is not indexed"
TOO_MANY_LINKS = "A resource cannot contain more than 20 link changes"
MAIL_ENABLED_CREATE = "Cannot Create a mail-enabled security groups and or distribution list."
MAIL_ENABLED_UPDATE = "Cannot Update a mail-enabled security groups and or distribution list."
ON_PREMISES_MASTERED = (
    "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects "
    "currently undergoing migration."
)
THROTTLED = "Please retry again later."
THROTTLED_INNER_MESSAGE = "Please retry after"
METHOD_NOT_ALLOWED = "Specified HTTP method is not allowed for the request target."


def graph_date(now: dt.datetime | None = None) -> str:
    """The innerError date: UTC without a zone suffix, as Graph writes it."""
    moment = now or dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def error_body(code: str, message: str, request_id: str, client_request_id: str | None) -> dict[str, Any]:
    inner: dict[str, Any] = {"date": graph_date(), "request-id": request_id}
    inner["client-request-id"] = client_request_id or request_id
    return {"error": {"code": code, "message": message, "innerError": inner}}


def throttled_body(request_id: str) -> dict[str, Any]:
    """The 429 body of Microsoft's throttling guidance.

    Unlike other errors, its innerError repeats the status as strings and has a message of its own, and it carries
    no client-request-id (the response header still does).
    """
    inner = {
        "code": "429",
        "date": graph_date(),
        "message": THROTTLED_INNER_MESSAGE,
        "request-id": request_id,
        "status": "429",
    }
    return {"error": {"code": "TooManyRequests", "message": THROTTLED, "innerError": inner}}


class GraphError(Exception):
    """Raised by a handler; rendered as Graph's error body with the given status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def not_found(object_id: str) -> GraphError:
    return GraphError(404, "Request_ResourceNotFound", NOT_FOUND.format(id=object_id))


def forbidden(message: str = INSUFFICIENT_PRIVILEGES) -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", message)


def unsupported_query(message: str = UNSUPPORTED_QUERY) -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)
