"""Bench-only application factory for bench/users_me.py: the real app, untouched, plus a bare
endpoint returning a constant dict, served by the same process and middleware.

    uvicorn bench.users_me_app:create_bench_app --factory
"""

from __future__ import annotations

from fastapi import FastAPI

from app.main import create_app

BARE = {"status": "ok", "service": "gatehouse", "version": 1}


def create_bench_app() -> FastAPI:
    app = create_app()

    @app.get("/bench/bare")
    async def bare() -> dict[str, object]:
        return BARE

    return app
