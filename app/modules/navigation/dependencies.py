"""FastAPI dependencies of the navigation module: permission aliases, the service, the cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.authz.dependencies import require
from app.core.database import SessionDep
from app.core.runtime import get_runtime
from app.modules.navigation.service import NavigationService, SidebarCache

SIDEBAR_CACHE = "navigation.sidebar_cache"

ModulesRead = require("module:read")
ModulesCreate = require("module:create")
ModulesUpdate = require("module:update")
ModulesDelete = require("module:delete")
RoutesRead = require("route:read")
RoutesCreate = require("route:create")
RoutesUpdate = require("route:update")
RoutesDelete = require("route:delete")


# Async on purpose: FastAPI runs plain `def` dependencies in the thread pool (a thread hop per
# request), which the sidebar's hot path cannot afford.
async def get_navigation_service(session: SessionDep, conn: HTTPConnection) -> NavigationService:
    return NavigationService(session, get_runtime(conn))


NavigationServiceDep = Annotated[NavigationService, Depends(get_navigation_service)]


def sidebar_cache(conn: HTTPConnection) -> SidebarCache:
    """The process's sidebar cache, created on first use and kept on the runtime."""
    runtime = get_runtime(conn)
    cache: SidebarCache | None = runtime.services.get(SIDEBAR_CACHE)
    if cache is None:
        cache = runtime.services.setdefault(SIDEBAR_CACHE, SidebarCache(runtime))
    return cache
