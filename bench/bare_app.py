"""A bare FastAPI application with one constant-JSON endpoint and nothing of ours (no middleware,
no error handlers): the strictest baseline for the per-request overhead benchmarks.

    uvicorn bench.bare_app:create_bare_app --factory
"""

from __future__ import annotations

from fastapi import FastAPI

BARE = {"status": "ok", "service": "gatehouse", "version": 1}


def create_bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/bench/bare")
    async def bare() -> dict[str, object]:
        return BARE

    return app
