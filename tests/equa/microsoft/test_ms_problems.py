"""How Graph failures are shown to users: status, code, action and Retry-After."""

from __future__ import annotations

from equa.microsoft.graph import GraphPermissionDenied, GraphThrottled, GraphTransient
from equa.microsoft.problems import DEFAULT_RETRY_AFTER_SECONDS, graph_problem
from equa.settings import load_settings


def test_a_known_wait_becomes_the_retry_after_of_a_503() -> None:
    settings = load_settings()
    outage = GraphTransient("sign-in service down", retry_after=5.0, action="Wait.")
    problem = graph_problem(outage, settings)
    assert (problem.status, problem.headers["Retry-After"]) == (503, "5")
    throttled = graph_problem(GraphThrottled("slow down", retry_after=2.5), settings)
    assert (throttled.status, throttled.code, throttled.headers["Retry-After"]) == (
        503,
        "microsoft_throttled",
        "3",
    )


def test_an_unknown_wait_falls_back_to_the_default() -> None:
    problem = graph_problem(GraphTransient("network"), load_settings())
    assert problem.headers["Retry-After"] == str(DEFAULT_RETRY_AFTER_SECONDS)
    assert problem.action


def test_missing_consent_carries_the_admin_consent_url() -> None:
    settings = load_settings(ms_auth_client_id="app-id", ms_auth_tenant_id="tenant-id")
    problem = graph_problem(GraphPermissionDenied("Insufficient privileges"), settings)
    assert problem.status == 502 and problem.code == "microsoft_permission_missing"
    consent = settings.admin_consent_url()
    assert consent and consent in (problem.action or "") and problem.extra["adminConsentUrl"] == consent
