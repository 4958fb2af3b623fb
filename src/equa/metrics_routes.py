"""GET /metrics: the Prometheus exposition, off unless EQUA_METRICS_TOKEN is set, then only with that bearer token."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.errors import AppError
from equa.metrics import FLAGGED_MEMBERS, METRICS_DATABASE_UP, SYNC_RUNS_ACTIVE
from equa.microsoft.models import ACTIVE_RUN_STATUSES, FlaggedMember, FlagStatus, SyncRun
from equa.settings import Settings

router = APIRouter(tags=["operations"])
log = logging.getLogger("equa.metrics")


def _metrics_absent() -> AppError:
    # The same answer as any address that does not exist: an unconfigured endpoint cannot be detected.
    return AppError(404, "not_found", "Nothing exists at this address.", None)


def _require_metrics_token(request: Request, settings: Settings) -> None:
    if settings.metrics_token is None or not settings.metrics_token.get_secret_value():
        raise _metrics_absent()
    expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
    given = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(given, expected):
        raise AppError(
            401,
            "not_authenticated",
            "Reading metrics needs the metrics token.",
            "Send Authorization: Bearer <EQUA_METRICS_TOKEN>.",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _refresh_database_gauges(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Set the gauges that are facts of the database, whichever process changed them."""
    async with session_factory() as session:
        flagged = {
            row[0]: row[1]
            for row in await session.execute(
                select(FlaggedMember.status, func.count()).group_by(FlaggedMember.status)
            )
        }
        active = {
            row[0]: row[1]
            for row in await session.execute(
                select(SyncRun.status, func.count())
                .where(SyncRun.status.in_(ACTIVE_RUN_STATUSES))
                .group_by(SyncRun.status)
            )
        }
    for flag_status in FlagStatus:
        FLAGGED_MEMBERS.labels(status=flag_status.value).set(flagged.get(flag_status.value, 0))
    for run_status in ACTIVE_RUN_STATUSES:
        SYNC_RUNS_ACTIVE.labels(status=str(run_status)).set(active.get(str(run_status), 0))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    _require_metrics_token(request, settings)
    try:
        await _refresh_database_gauges(request.app.state.session_factory)
        METRICS_DATABASE_UP.set(1)
    except Exception as exc:
        # Metrics must still be readable when the database is down: that is when they matter most.
        log.warning("metrics: the database gauges could not be read (%s)", type(exc).__name__)
        METRICS_DATABASE_UP.set(0)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
