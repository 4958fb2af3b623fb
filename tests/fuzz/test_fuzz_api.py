"""Fuzz every operation of the served API from its own /openapi.json, as an organization admin, Graph emulated.

Each documented operation gets generated requests (schemathesis + Hypothesis). Schema-level hooks
(flatmap_path_parameters, flatmap_body) draw most ids from those that exist (see conftest.RealIds): about 3 in 5
path org_ids are the seeded organization (group linked, synced), 1 in 5 another organization of the admin with no
group, 1 in 5 stay random; the other path ids (team member, sync run, flagged member, group member, API token) and a
few body fields (the group to link, the person to add) are real 3 times in 4. The rest keep their generated values,
so 404 handling is fuzzed too.

A response fails the run when it is a 5xx, has a status the operation does not document, or a body or content
type that breaks the documented schema. The count of responses by status code is printed at the end of the run.

EQUA_FUZZ_EXAMPLES is the total number of generated requests, spread over the operations (default 300; `make fuzz`
uses 2000).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (  # type: ignore[attr-defined]
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from equa.app import create_app
from equa.settings import Settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TOTAL_EXAMPLES = int(os.environ.get("EQUA_FUZZ_EXAMPLES", "300"))

# Operations that change what the others see run last, so the others meet a linked group and a signed-in admin;
# on each path, DELETE runs after the other methods, which then still find what it removes.
_RUN_LAST = ("/unlink-group", "/api/v1/session", "/me/tokens/{token_id}")


def _documented_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation, read from the same application the fixture serves."""
    settings = Settings(  # type: ignore[call-arg]
        ms_auth_enabled=True,
        ms_auth_client_id="fuzz-client",
        ms_auth_tenant_id="fuzz-tenant",
        ms_auth_secret="fuzz-secret-value",
        database_url="sqlite+aiosqlite:///unused.db",
    )
    document = create_app(settings).openapi()
    operations = [
        (method.upper(), path)
        for path, methods in document["paths"].items()
        for method in methods
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    return sorted(
        operations,
        key=lambda op: (any(op[1].endswith(s) for s in _RUN_LAST), op[1], op[0] == "DELETE", op[0]),
    )


OPERATIONS = _documented_operations()
EXAMPLES_PER_OPERATION = max(3, math.ceil(TOTAL_EXAMPLES / len(OPERATIONS)))


# --- real ids in generated requests ------------------------------------------------------------------------


def _real_or(generated: Any, pool: Sequence[Any], real: int = 3) -> st.SearchStrategy[Any]:
    """One of `pool` in `real` draws out of `real + 1`, else `generated`.

    The real ids come first: Hypothesis starts with (and shrinks towards) the first choice, so the first request
    of each operation reaches past the 404.
    """
    if not pool:
        return st.just(generated)
    return st.integers(0, real).flatmap(lambda n: st.sampled_from(pool) if n < real else st.just(generated))


def _path_parameters(ids: Any, generated: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The generated path parameters with real ids drawn in; a member's id goes with its organization."""

    @st.composite
    def draw_ids(draw: st.DrawFn) -> dict[str, Any]:
        chosen = dict(generated)
        # The admin's own membership is changed in the solo organization only: once the fuzzing has made someone
        # else an admin, demoting or removing the admin succeeds, and every later request there answers 403/404.
        other = ids.solo_organization_id if "user_id" in chosen else ids.spare_organization_id
        if "org_id" in chosen:
            orgs = (ids.organization_id, ids.organization_id, ids.organization_id, other, chosen["org_id"])
            chosen["org_id"] = orgs[draw(st.integers(0, len(orgs) - 1))]
        if "user_id" in chosen:
            members = {ids.organization_id: ids.team_user_ids, ids.solo_organization_id: ids.solo_user_ids}
            pool = members.get(chosen.get("org_id"), ids.team_user_ids + ids.solo_user_ids)
            chosen["user_id"] = draw(_real_or(chosen["user_id"], pool))
        pools = {
            "run_id": ids.run_ids,
            "flag_id": ids.flag_ids,
            "member_id": ids.group_member_ids + ids.tenant_user_ids,
            "token_id": ids.token_ids,
        }
        for name, pool in pools.items():
            if name in chosen:
                chosen[name] = draw(_real_or(chosen[name], pool))
        return chosen

    return draw_ids()


def _body(ids: Any, method: str, path: str, generated: Any) -> st.SearchStrategy[Any]:
    """The generated body, or one naming a real group or person, for the operations that take such ids."""
    if not isinstance(generated, dict):
        return st.just(generated)
    if (method, path) == ("POST", "/api/v1/organizations/{org_id}/microsoft/link-group"):
        return _real_or(generated, [{"groupId": group} for group in ids.group_ids])
    if (method, path) == ("POST", "/api/v1/organizations/{org_id}/microsoft/group/members"):
        people = (
            [{"userId": user} for user in ids.tenant_user_ids]
            + [{"email": email} for email in ids.tenant_emails]
            + [{"equaUserId": user} for user in (ids.admin_id, *ids.team_user_ids)]
        )
        return _real_or(generated, people)
    if (method, path) == ("POST", "/api/v1/organizations/{org_id}/members") and "email" in generated:
        return _real_or(generated, [{**generated, "email": email} for email in ids.tenant_emails])
    return st.just(generated)


def _id_kind(path_parameters: dict[str, Any], real: frozenset[str]) -> str:
    if not path_parameters:
        return "no path ids"
    if all(str(value) in real for value in path_parameters.values()):
        return "real path ids"
    return "a random path id"


@pytest.fixture(scope="module")
def api_schema(fuzz_target: Any) -> Any:
    schema = schemathesis.openapi.from_url(f"{fuzz_target.base_url}/openapi.json")
    ids = fuzz_target.ids

    @schema.hook("flatmap_path_parameters")
    def real_path_ids(context: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy[Any]:
        if not path_parameters:
            return st.just(path_parameters)
        return _path_parameters(ids, path_parameters)

    @schema.hook("flatmap_body")
    def real_body_ids(context: Any, body: Any) -> st.SearchStrategy[Any]:
        return _body(ids, context.operation.method.upper(), context.operation.path, body)

    return schema


def test_the_served_schema_lists_every_operation(api_schema: Any) -> None:
    served = {(result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()}
    assert served == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_operation(method: str, path: str, api_schema: Any, fuzz_target: Any, status_tally: Any) -> None:
    operation = api_schema[path][method]
    label = f"{method} {path}"
    real = fuzz_target.ids.all()
    status_tally.start(label)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        response = case.call(base_url=fuzz_target.base_url, headers=fuzz_target.seeded.headers, timeout=60)
        status_tally.record(label, _id_kind(case.path_parameters, real), response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()
    assert fuzz_target.app.alive(), fuzz_target.app.output()[-3000:]


def test_fuzz_summary(fuzz_target: Any, status_tally: Any) -> None:
    """Every operation was exercised, and none answered 5xx (the counts by status are in the terminal summary)."""
    overall = status_tally.overall()
    server_errors = sum(n for status, n in overall.items() if status >= 500)
    print("\nfuzz: " + "; ".join(status_tally.lines()))
    assert set(status_tally.by_operation) == {f"{m} {p}" for m, p in OPERATIONS}
    assert all(sum(c.values()) > 0 for c in status_tally.by_operation.values())
    assert server_errors == 0
    assert "Traceback" not in fuzz_target.app.output()
