"""Classification of Graph and sign-in error answers into the GraphError tree, with actions."""

from __future__ import annotations

import json

import pytest

from equa.microsoft.graph.errors import (
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
    classify_graph_error,
    classify_token_error,
)
from equa.microsoft.graph.permissions import ScopeKind, ScopeSetting, permission_names
from reference_examples import reference_dir

CONSENT_URL = "https://login.example/tenant/v2.0/adminconsent?client_id=abc"


def graph_body(code: str, message: str, request_id: str = "req-1") -> dict:
    return {"error": {"code": code, "message": message, "innerError": {"request-id": request_id}}}


def test_throttled_carries_retry_after_and_says_how_long_to_wait() -> None:
    error = classify_graph_error(
        429, graph_body("TooManyRequests", "Please retry again later."), headers={"Retry-After": "7"}
    )
    assert isinstance(error, GraphThrottled)
    assert isinstance(error, GraphTransient)
    assert error.retry_after == 7
    assert "7 s" in (error.action or "")
    assert error.request_id == "req-1"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(status: int) -> None:
    error = classify_graph_error(status, b"")
    assert type(error) is GraphTransient
    assert error.retryable


def test_consent_missing_points_to_the_admin_consent_url() -> None:
    error = classify_graph_error(
        403,
        graph_body("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
        admin_consent_url=CONSENT_URL,
    )
    assert type(error) is GraphPermissionDenied
    assert CONSENT_URL in (error.action or "")
    # Without knowing what the request was for, the action names every permission of the one list.
    for name in permission_names(ScopeSetting(ScopeKind.GRANTED)):
        assert name in (error.action or "")


def test_guest_policy_is_permanent_permission_denied() -> None:
    error = classify_graph_error(
        403,
        graph_body(
            "Authorization_RequestDenied",
            "Guests users are not allowed to join this Unified Group due to policy setting.",
        ),
    )
    assert isinstance(error, GraphGuestBlocked)
    assert isinstance(error, GraphPermissionDenied)
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (
            400,
            "One or more added object references already exist for the following modified properties: "
            "'members'.",
            GraphAlreadyExists,
        ),
        (
            400,
            "Another object with the same value for property mailNickname already exists.",
            GraphAlreadyExists,
        ),
        (
            404,
            "Resource 'x' does not exist or one of its queried reference-property objects are not present.",
            GraphNotFound,
        ),
        (
            400,
            "One or more removed object references do not exist for the following modified properties: "
            "'members'.",
            GraphNotFound,
        ),
        (400, "Invalid object identifier 'test'.", GraphInvalidRequest),
        (400, "Cannot Update a mail-enabled security groups and or distribution list.", GraphUnmanageable),
        (403, "Cannot Update a mail-enabled security groups and or distribution list.", GraphUnmanageable),
        (
            400,
            "Unable to update the specified properties for on-premises mastered Directory Sync objects or "
            "objects currently undergoing migration.",
            GraphUnmanageable,
        ),
        (
            400,
            "Insufficient privileges: cannot add members to a group with dynamic membership.",
            GraphUnmanageable,
        ),
        (
            400,
            "The source resource object or one of the objects being referenced don't exist.",
            GraphNotFound,
        ),
    ],
)
def test_known_messages_map_to_what_the_caller_does_next(status: int, message: str, expected: type) -> None:
    error = classify_graph_error(status, graph_body("Request_BadRequest", message))
    assert type(error) is expected
    assert error.action


def test_reference_observations_classify_as_documented() -> None:
    observed = json.loads((reference_dir() / "observed-graph-errors.json").read_text())
    not_found = observed["resource_not_found_404"]
    error = classify_graph_error(not_found["http_status"], not_found["body"])
    assert isinstance(error, GraphNotFound)
    assert error.request_id == "f58cc4de-b427-41de-b37c-46ee4925a26d"
    denied = observed["insufficient_privileges_403"]
    assert type(classify_graph_error(403, denied["body"])) is GraphPermissionDenied


def test_unparseable_body_still_classifies_by_status() -> None:
    error = classify_graph_error(404, b"<html>gone</html>", headers={"request-id": "hdr-id"})
    assert isinstance(error, GraphNotFound)
    assert error.request_id == "hdr-id"


@pytest.mark.parametrize(
    ("key", "code", "phrase"),
    [
        ("AADSTS7000215_invalid_secret", "AADSTS7000215", "Value, not its Secret ID"),
        ("AADSTS7000222_expired_secret", "AADSTS7000222", "certificate"),
        ("AADSTS700016_app_not_in_tenant", "AADSTS700016", "MS_AUTH_CLIENT_ID"),
        ("AADSTS90002_tenant_not_found_token_POST_2021", "AADSTS90002", "MS_AUTH_TENANT_ID"),
    ],
)
def test_token_endpoint_errors_carry_the_aadsts_code_and_remedy(key: str, code: str, phrase: str) -> None:
    observed = json.loads((reference_dir() / "observed-token-endpoint-errors.json").read_text())[key]
    error = classify_token_error(observed["body"], status=observed["http_status"])
    assert isinstance(error, GraphAuthenticationFailed)
    assert error.code == code
    assert phrase in (error.action or "")
    assert "Trace ID" not in error.message


def test_token_outage_is_transient() -> None:
    error = classify_token_error(
        {"error": "temporarily_unavailable", "error_description": "busy"}, status=503
    )
    assert isinstance(error, GraphTransient)


def test_gave_up_says_how_long_it_tried() -> None:
    error: GraphError = classify_graph_error(503, b"")
    error.gave_up(4, 12.5)
    assert "4 attempts" in str(error)
    assert "12.5 s" in str(error)
    assert error.attempts == 4
