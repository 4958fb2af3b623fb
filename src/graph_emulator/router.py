"""Graph request and response values, the route table, and dispatch shared by HTTP and $batch."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import METHOD_NOT_ALLOWED, GraphError, forbidden

if TYPE_CHECKING:
    from .runtime import Emulator
    from .state import App, Tenant

READ_GROUP = frozenset(
    {
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "GroupMember.Read.All",
        "GroupMember.ReadWrite.All",
    }
)
WRITE_MEMBERS = frozenset({"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"})
CREATE_GROUP = frozenset({"Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All"})
WRITE_GROUP = frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All"})
READ_USERS = frozenset(
    {
        "User.Read.All",
        "User.ReadWrite.All",
        "User.ReadBasic.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
WRITE_USERS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
ROLE_ASSIGNABLE_MEMBERS = "RoleManagement.ReadWrite.Directory"
# Administrative units, as "directory-list-administrativeunits" and "administrativeunit-post-members" list them.
READ_UNITS = frozenset(
    {
        "AdministrativeUnit.Read.All",
        "AdministrativeUnit.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
WRITE_UNIT_MEMBERS = frozenset({"AdministrativeUnit.ReadWrite.All"})
# Creating a group inside a unit: a group-creating permission AND the right to read the unit.
CREATE_GROUP_IN_UNIT = (
    frozenset({"Group.Create", "Group.ReadWrite.All"}),
    frozenset({"AdministrativeUnit.Read.All", "AdministrativeUnit.ReadWrite.All"}),
)


@dataclass
class GraphRequest:
    method: str
    path: str  # decoded, relative to /v1.0, e.g. "/groups/{id}/members"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    tenant: Tenant
    app: App
    roles: frozenset[str]
    request_id: str
    client_request_id: str | None
    graph_base: str  # absolute URL of /v1.0 on this emulator
    raw_query: str = ""

    def require(self, allowed: frozenset[str]) -> None:
        if not self.roles & allowed:
            raise forbidden()


@dataclass
class GraphResponse:
    status: int
    body: Any = None  # dict -> JSON, str -> text/plain, None -> empty
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["GraphRequest", "Emulator", dict[str, str]], GraphResponse]


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    cost_kind: str  # "members" | "users" | "read" | "write"


ROUTES: list[Route] = []


def _compile(template: str) -> re.Pattern[str]:
    regex = re.escape(template)
    regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", regex)
    return re.compile(f"^{regex}/?$")


def route(method: str, template: str, cost_kind: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, template, _compile(template), handler, cost_kind))
        return handler

    return register


# Type names a cast segment may carry with the `graph.` alias, as the SDKs write them (`/members/graph.user`).
CAST_TYPES = {
    "user",
    "group",
    "servicePrincipal",
    "device",
    "orgContact",
    "application",
    "administrativeUnit",
}
FUNCTIONS = {"delta"}


def normalize_path(path: str) -> str:
    """Graph's equivalent spellings, reduced to one: `graph.user` casts, `delta()` and `microsoft.graph.delta()`."""
    segments = path.split("/")
    for index, segment in enumerate(segments):
        called = segment.endswith("()")
        bare = segment[:-2] if called else segment
        name = bare
        for prefix in ("microsoft.graph.", "graph."):
            if bare.startswith(prefix):
                name = bare[len(prefix) :]
                break
        if name in FUNCTIONS and (called or name != bare):
            segments[index] = name
        elif not called and name != bare and name in CAST_TYPES:
            segments[index] = f"microsoft.graph.{name}"
    return "/".join(segments)


def match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """Find the route; 405 when the path exists for another method, 400 for an unknown segment."""
    path_matched = False
    # Literal segments win over placeholders: /groups/delta and /groups/$count before /groups/{id}.
    for candidate in sorted(ROUTES, key=lambda r: r.template.count("{")):
        found = candidate.pattern.match(path)
        if found is None:
            continue
        if candidate.method == method:
            return candidate, found.groupdict()
        path_matched = True
    if path_matched:
        raise GraphError(405, "Request_BadRequest", METHOD_NOT_ALLOWED)
    segment = next((part for part in path.split("/") if part), "")
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def resource_units(route_: Route, query: dict[str, str]) -> int:
    """Cost in resource units as the identity-and-access throttling documentation defines it."""
    base = {"members": 3, "users": 2}.get(route_.cost_kind, 1)
    if route_.cost_kind != "write":
        if "$select" in query:
            base -= 1
        if "$expand" in query:
            base += 1
        top = query.get("$top")
        if top is not None and top.isdigit() and int(top) < 20:
            base -= 1
    return max(base, 1)
