"""/metrics: hidden unless a token is configured, bearer-protected, labelled by route template, never a secret."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.app import create_app
from equa.metrics import record_sync_run
from equa.microsoft.models import FlaggedMember, FlagStatus, RunStatus, SyncRun
from equa.organizations.models import Organization
from equa.settings import Settings

METRICS_TOKEN = "metrics-token-" + "m" * 24


@pytest_asyncio.fixture
async def metrics_client(make_settings: Callable[..., Settings], clean_database: str) -> Any:
    application: FastAPI = create_app(make_settings(metrics_token=METRICS_TOKEN))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.app = application  # type: ignore[attr-defined]
            yield http


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


async def _scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_do_not_exist_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"Authorization": "Bearer anything"})
    unknown = await client.get("/no-such-page")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == unknown.json()


async def test_metrics_need_the_exact_bearer_token(metrics_client: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": METRICS_TOKEN},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
    ):
        response = await metrics_client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert METRICS_TOKEN not in response.text
    await _scrape(metrics_client)


async def test_requests_are_counted_by_route_template_not_by_address(
    metrics_client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    admin = await make_user()
    organization = await make_org(admin)
    headers = await bearer(admin)
    template = "/api/v1/organizations/{org_id}"
    key = ("equa_http_requests_total", (("method", "GET"), ("route", template), ("status", "200")))
    missing_key = ("equa_http_requests_total", (("method", "GET"), ("route", template), ("status", "404")))
    before = _samples(await _scrape(metrics_client))

    for _ in range(3):
        assert (
            await metrics_client.get(f"/api/v1/organizations/{organization.id}", headers=headers)
        ).is_success
    assert (
        await metrics_client.get(f"/api/v1/organizations/{uuid.uuid4()}", headers=headers)
    ).status_code == 404
    stray = f"/stray-{uuid.uuid4().hex}"
    assert (await metrics_client.get(stray)).status_code == 404
    assert (await metrics_client.request("BREW", "/healthz")).status_code == 405

    text = await _scrape(metrics_client)
    after = _samples(text)
    assert after[key] - before.get(key, 0) == 3
    assert after[missing_key] - before.get(missing_key, 0) == 1
    unmatched = ("equa_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))
    assert after[unmatched] - before.get(unmatched, 0) == 1
    odd_method = ("equa_http_requests_total", (("method", "OTHER"), ("route", "/healthz"), ("status", "405")))
    assert after[odd_method] - before.get(odd_method, 0) == 1
    histogram = ("equa_http_request_duration_seconds_count", (("method", "GET"), ("route", template)))
    assert after[histogram] - before.get(histogram, 0) == 4
    # Raw addresses, ids and credentials never become label values.
    assert str(organization.id) not in text
    assert stray not in text
    assert "BREW" not in text
    assert METRICS_TOKEN not in text
    assert headers["Authorization"].removeprefix("Bearer ") not in text


async def test_graph_and_sync_metric_families_are_exposed(metrics_client: httpx.AsyncClient) -> None:
    record_sync_run("succeeded", 2.0, flagged_members=3)
    families = {family.name for family in text_string_to_metric_families(await _scrape(metrics_client))}
    for family in (
        "equa_graph_requests",
        "equa_graph_retries",
        "equa_graph_throttled_wait_seconds",
        "equa_graph_token_acquisitions",
        "equa_sync_runs",
        "equa_sync_run_duration_seconds",
        "equa_sync_members_flagged",
        "equa_flagged_members",
        "equa_sync_runs_active",
    ):
        assert family in families, family


def test_record_sync_run_keeps_results_bounded() -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    failed_before = value("equa_sync_runs_total", result="failed")
    partial_before = value("equa_sync_runs_total", result="partial")
    flagged_before = value("equa_sync_members_flagged_total")
    record_sync_run("partial", 1.5, flagged_members=2)
    record_sync_run("something-unexpected", 0.5)
    assert value("equa_sync_runs_total", result="partial") == partial_before + 1
    assert value("equa_sync_runs_total", result="failed") == failed_before + 1
    assert value("equa_sync_members_flagged_total") == flagged_before + 2
    assert value("equa_sync_runs_total", result="something-unexpected") == 0.0


async def test_database_gauges_count_flagged_members_and_active_runs(
    metrics_client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
) -> None:
    first = await make_org(await make_user())
    second = await make_org(await make_user())
    factory: async_sessionmaker[AsyncSession] = metrics_client.app.state.session_factory  # type: ignore[attr-defined]
    async with factory() as session:
        for organization, status in (
            (first, FlagStatus.PENDING),
            (first, FlagStatus.PENDING),
            (second, FlagStatus.PENDING),
            (second, FlagStatus.DISMISSED),
        ):
            session.add(
                FlaggedMember(
                    organization_id=organization.id,
                    directory_id=str(uuid.uuid4()),
                    email=f"{uuid.uuid4().hex[:6]}@contoso.example",
                    status=status.value,
                )
            )
        session.add(SyncRun(organization_id=first.id, trigger="api", status=RunStatus.RUNNING.value))
        session.add(SyncRun(organization_id=second.id, trigger="api", status=RunStatus.QUEUED.value))
        session.add(SyncRun(organization_id=second.id, trigger="api", status=RunStatus.SUCCEEDED.value))
        await session.commit()

    samples = _samples(await _scrape(metrics_client))
    assert samples[("equa_flagged_members", (("status", "pending"),))] == 3
    assert samples[("equa_flagged_members", (("status", "dismissed"),))] == 1
    assert samples[("equa_flagged_members", (("status", "invited"),))] == 0
    assert samples[("equa_sync_runs_active", (("status", "running"),))] == 1
    assert samples[("equa_sync_runs_active", (("status", "queued"),))] == 1
    assert samples[("equa_metrics_database_up", ())] == 1
