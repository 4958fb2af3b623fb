"""Route templates for metric labels, and $batch id assignment and chunking."""

from __future__ import annotations

import pytest

from equa.microsoft.graph.batch import BatchRequest, assign_ids, chunk_indexes
from equa.microsoft.graph.routes import route_template

GID = "5b31c38c-2584-42f0-aa47-657fb3a84230"
UID = "f58cc4de-b427-41de-b37c-46ee4925a26d"


@pytest.mark.parametrize(
    ("url", "template"),
    [
        (f"https://graph.microsoft.com/v1.0/groups/{GID}/members?$top=999", "/groups/{id}/members"),
        (f"https://127.0.0.1:8443/v1.0/groups/{GID}/members/{UID}/$ref", "/groups/{id}/members/{id}/$ref"),
        ("/users/alias_gmail.com%23EXT%23@contoso.onmicrosoft.com", "/users/{id}"),
        (f"/groups/{GID}/members/$count", "/groups/{id}/members/$count"),
        (f"/groups/{GID}/members/microsoft.graph.user", "/groups/{id}/members/microsoft.graph.user"),
        ("/groups/delta?$deltatoken=abc", "/groups/delta"),
        ("https://graph.microsoft.com/v1.0/$batch", "/$batch"),
        ("/users('someone@contoso.com')", "/users({id})"),
        ("/groups/not-a-guid-but-an-id", "/groups/{id}"),
    ],
)
def test_route_template_replaces_ids(url: str, template: str) -> None:
    assert route_template(url) == template


def test_ids_default_to_positions_and_must_be_unique() -> None:
    requests = [BatchRequest("GET", "/a"), BatchRequest("GET", "/b", id="x"), BatchRequest("GET", "/c")]
    assert assign_ids(requests) == ["1", "x", "3"]
    with pytest.raises(ValueError, match="unique"):
        assign_ids([BatchRequest("GET", "/a", id="1"), BatchRequest("GET", "/b", id="1")])
    with pytest.raises(ValueError, match="unknown"):
        assign_ids([BatchRequest("GET", "/a", depends_on=["zz"])])


def test_chunks_hold_twenty_and_keep_order() -> None:
    requests = [BatchRequest("GET", f"/users/{i}") for i in range(45)]
    chunks = chunk_indexes(requests, assign_ids(requests))
    assert [len(c) for c in chunks] == [20, 20, 5]
    assert [i for c in chunks for i in c] == list(range(45))


def test_depends_on_chains_are_never_split() -> None:
    requests = [BatchRequest("GET", f"/users/{i}") for i in range(18)]
    requests += [
        BatchRequest("POST", "/groups", body={}, id="create"),
        BatchRequest("GET", "/groups/x", id="read", depends_on=["create"]),
        BatchRequest("PATCH", "/groups/x", body={}, id="update", depends_on=["read"]),
    ]
    ids = assign_ids(requests)
    chunks = chunk_indexes(requests, ids)
    assert [len(c) for c in chunks] == [18, 3]
    with pytest.raises(ValueError, match="does not fit"):
        chain = [BatchRequest("GET", "/a", id="0")]
        chain += [BatchRequest("GET", "/a", id=str(i), depends_on=[str(i - 1)]) for i in range(1, 21)]
        chunk_indexes(chain, assign_ids(chain))
