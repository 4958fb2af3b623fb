"""Operational probes: /healthz (the process answers) and /readyz (the database answers)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from equa.errors import AppError, problem_responses

router = APIRouter(tags=["operations"])
log = logging.getLogger("equa.health")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503))
async def readyz(request: Request) -> dict[str, str]:
    engine: AsyncEngine = request.app.state.engine
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness check failed: the database does not answer (%s)", type(exc).__name__)
        raise AppError(
            503,
            "database_unavailable",
            "The database does not answer.",
            "Check EQUA_DATABASE_URL and the server.",
        ) from exc
    return {"status": "ready"}
