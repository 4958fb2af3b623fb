"""Route templates for metric labels: /groups/5b31.../members -> /groups/{id}/members, bounded cardinality."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Segments after which Graph expects an object key (id, UPN, ...).
_COLLECTIONS = frozenset(
    {
        "groups",
        "users",
        "members",
        "owners",
        "directoryObjects",
        "servicePrincipals",
        "applications",
        "transitiveMembers",
        "memberOf",
        "devices",
        "contacts",
        "deletedItems",
        "organization",
    }
)
_KEYWORD_PREFIXES = ("$", "microsoft.graph.", "delta")
_VERSION = re.compile(r"^(v1\.0|beta)$")
_SAFE_SEGMENT = re.compile(r"^[A-Za-z$][A-Za-z0-9.$_]{0,63}$")


def route_template(url: str) -> str:
    """The path with ids replaced by {id}, without host, version or query."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    segments = [unquote(s) for s in path.split("/") if s]
    if segments and _VERSION.match(segments[0]):
        segments = segments[1:]
    templated: list[str] = []
    previous = ""
    for segment in segments:
        # Keys in parentheses, e.g. users('a@b.c') or groups(uniqueName='x').
        base, paren, _ = segment.partition("(")
        if paren:
            segment = f"{base}({{id}})"
        elif (
            _GUID.match(segment)
            or (previous in _COLLECTIONS and not segment.startswith(_KEYWORD_PREFIXES))
            or not _SAFE_SEGMENT.match(segment)
        ):
            segment = "{id}"
        templated.append(segment)
        previous = base if paren else segment
    return "/" + "/".join(templated)
