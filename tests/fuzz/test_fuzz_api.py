"""Fuzz every operation of the served API from its own /openapi.json, as an organization admin, Graph emulated.

Each documented operation gets generated requests (schemathesis + Hypothesis). Half of them use the real
organization (and, for member operations, the real admin) so requests reach the business rules and Microsoft Graph
instead of stopping at 404. A response fails the run when it is a 5xx, has a status the operation does not
document, or a body or content type that breaks the documented schema.

EQUA_FUZZ_EXAMPLES is the total number of generated requests, spread over the operations (default 300; `make fuzz`
uses 2000).
"""

from __future__ import annotations

import math
import os
from collections import Counter
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

# Operations that change what the others see run last, so the others meet a linked group and a signed-in admin.
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
    return sorted(operations, key=lambda op: (any(op[1].endswith(s) for s in _RUN_LAST), op[1], op[0]))


OPERATIONS = _documented_operations()
EXAMPLES_PER_OPERATION = max(3, math.ceil(TOTAL_EXAMPLES / len(OPERATIONS)))
STATUSES: dict[str, Counter[int]] = {}


@pytest.fixture(scope="module")
def api_schema(fuzz_target: Any) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_target.base_url}/openapi.json")


def test_the_served_schema_lists_every_operation(api_schema: Any) -> None:
    served = {(result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()}
    assert served == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_operation(method: str, path: str, api_schema: Any, fuzz_target: Any) -> None:
    operation = api_schema[path][method]
    seeded = fuzz_target.seeded
    seen = STATUSES.setdefault(f"{method} {path}", Counter())

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=operation.as_strategy(), use_real_ids=st.booleans())
    def run(case: Any, use_real_ids: bool) -> None:
        if use_real_ids and case.path_parameters:
            if "org_id" in case.path_parameters:
                case.path_parameters["org_id"] = str(seeded.organization_id)
            if "user_id" in case.path_parameters:
                case.path_parameters["user_id"] = str(seeded.admin_id)
        response = case.call(base_url=fuzz_target.base_url, headers=seeded.headers, timeout=60)
        seen[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()
    assert fuzz_target.app.alive(), fuzz_target.app.output()[-3000:]


def test_fuzz_summary(fuzz_target: Any) -> None:
    """Every operation was exercised, and none answered 5xx (printed with -s for the record)."""
    total = sum(sum(c.values()) for c in STATUSES.values())
    server_errors = sum(n for c in STATUSES.values() for status, n in c.items() if status >= 500)
    print(
        f"\nfuzz: {len(STATUSES)} operations, {total} requests, {server_errors} server errors; "
        f"statuses {dict(sum(STATUSES.values(), Counter()))}"
    )
    assert set(STATUSES) == {f"{m} {p}" for m, p in OPERATIONS}
    assert all(sum(c.values()) > 0 for c in STATUSES.values())
    assert server_errors == 0
    assert "Traceback" not in fuzz_target.app.output()
