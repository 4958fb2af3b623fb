"""The error-policy table: what a sync does with each kind of Graph answer to a member write."""

from __future__ import annotations

import json

import pytest

from equa.microsoft.graph import classify_graph_error
from equa.microsoft.sync.policy import OnError, on_error


def body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (429, b"", OnError.REQUEUE),
        (503, b"", OnError.REQUEUE),
        (500, b"", OnError.REQUEUE),
        (404, body("Request_ResourceNotFound", "Resource does not exist."), OnError.RETRY),
        (400, body("Request_BadRequest", "One of the objects being referenced don't exist."), OnError.RETRY),
        (
            403,
            body("Authorization_RequestDenied", "Guests users are not allowed to join this Unified Group."),
            OnError.REQUEUE,
        ),
        (
            403,
            body("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
            OnError.FAIL_RUN,
        ),
        (401, body("InvalidAuthenticationToken", "Access token has expired."), OnError.FAIL_RUN),
        (
            400,
            body(
                "Request_BadRequest", "Cannot Update a mail-enabled security groups and or distribution list."
            ),
            OnError.FAIL_RUN,
        ),
        (400, body("Request_BadRequest", "Invalid value for property."), OnError.REQUEUE),
    ],
)
def test_each_graph_answer_has_one_action(status: int, answer: bytes, expected: OnError) -> None:
    assert on_error(classify_graph_error(status, answer)) is expected
