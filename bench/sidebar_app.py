"""Bench-only application factory: the real app plus a bare endpoint returning a constant.

uvicorn bench.sidebar_app:create_bench_app --factory
"""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app

BARE = {"status": "ok", "service": "gatehouse", "version": 1}


def create_bench_app(settings: Settings | None = None) -> FastAPI:
    app = create_app(settings)

    @app.get("/bench/bare")
    async def bare() -> dict[str, object]:
        return BARE

    return app
