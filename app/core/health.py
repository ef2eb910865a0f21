"""Liveness, dependency health and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

from app.core.runtime import get_runtime

router = APIRouter(tags=["health"])

# A dependency that hangs (a black-holed database host) must not hang the health check.
CHECK_TIMEOUT_SECONDS = 3.0


async def _ping_database(request: Request) -> None:
    async with get_runtime(request).engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/detailed", summary="Database and Redis health")
async def health_detailed(request: Request) -> Response:
    runtime = get_runtime(request)
    checks: dict[str, Any] = {}
    healthy = True
    start = time.perf_counter()
    try:
        await asyncio.wait_for(_ping_database(request), CHECK_TIMEOUT_SECONDS)
        checks["database"] = {
            "status": "ok",
            "backend": runtime.engine.dialect.name,
            "latency_ms": round((time.perf_counter() - start) * 1000, 2),
        }
    except Exception:
        healthy = False
        checks["database"] = {"status": "error", "backend": runtime.engine.dialect.name}
    if runtime.state.redis is None:
        checks["redis"] = {"status": "not_configured"}
    else:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(runtime.state.ping_redis(), CHECK_TIMEOUT_SECONDS)
            checks["redis"] = {
                "status": "ok",
                "latency_ms": round((time.perf_counter() - start) * 1000, 2),
            }
        except Exception:
            healthy = False
            checks["redis"] = {"status": "error"}
    checks["authz_version"] = runtime.state.authz_version
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
