"""create_app(): settings -> logging -> middleware -> routers -> lifespan."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.authz.dependencies import PRINCIPAL_STORE, install_bearer_security
from app.authz.principal import PrincipalStore
from app.authz.rate_limit import PrincipalRateLimitMiddleware
from app.authz.versioning import read_versions
from app.core import health
from app.core.cache import SharedState, StateSources
from app.core.clock import Clock
from app.core.config import Settings, get_settings
from app.core.database import create_engine, create_session_factory
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging
from app.core.mail import Mailer
from app.core.middleware import ProblemCORSMiddleware, RequestPlumbingMiddleware
from app.core.ratelimit import RateLimiter
from app.core.runtime import Runtime
from app.core.security import PasswordHasher, TokenService
from app.modules import MODULE_NAMES
from app.modules.auth.service import read_revoked_session_ids
from app.modules.users.service import load_identity


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    engine = create_engine(settings)
    state = SharedState(
        settings.REDIS_URL, settings.STATE_POLL_INTERVAL_SECONDS, settings.REDIS_NAMESPACE
    )
    runtime = Runtime(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        state=state,
        clock=clock or Clock(),
        hasher=PasswordHasher(settings),
        tokens=TokenService(settings),
        mailer=Mailer(settings),
        limiter=RateLimiter(settings, settings.REDIS_URL),
    )
    runtime.services[PRINCIPAL_STORE] = PrincipalStore(engine, state, load_identity)
    return runtime


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or get_settings()
    if configure_logs:
        configure_logging("DEBUG" if settings.DEBUG else settings.LOG_LEVEL, settings.LOG_JSON)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings, clock)
        app.state.runtime = runtime
        app.state.session_factory = runtime.session_factory
        await runtime.state.start(
            StateSources(
                read_versions=lambda: read_versions(runtime.engine),
                read_revoked_sessions=lambda: read_revoked_session_ids(runtime.engine),
            )
        )
        try:
            yield
        finally:
            await runtime.mailer.drain(grace_seconds=settings.SMTP_TIMEOUT_SECONDS)
            await runtime.limiter.close()
            await runtime.state.stop()
            await runtime.engine.dispose()
            runtime.hasher.close()

    docs = settings.DOCS_ENABLED
    app = FastAPI(
        title=settings.APP_NAME,
        version="0.1.0",
        description="Identity, dynamic RBAC and field/row-level access control.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_parameters={"persistAuthorization": True},
        telemetry=None
        if settings.OTEL_ENABLED
        else {"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    install_bearer_security(app, f"{settings.API_PREFIX}/auth/login")
    app.include_router(health.router)
    for name in MODULE_NAMES:
        module = importlib.import_module(f"app.modules.{name}.api")
        for router in module.routers:  # flat: each one level below the app (app/core/routing.py)
            app.include_router(router, prefix=settings.API_PREFIX)

    # Middleware, innermost first. The general per-principal rate limit sits at the edge (pure
    # ASGI, app/authz/rate_limit.py); the auth routes carry their own (per address / account).
    if settings.RATE_LIMIT_ENABLED:
        app.add_middleware(PrincipalRateLimitMiddleware, settings=settings)

    if settings.ALLOWED_ORIGINS:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.ALLOWED_ORIGINS,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestPlumbingMiddleware, settings=settings)
    return app
