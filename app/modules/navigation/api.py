"""Navigation HTTP API: /modules and /routes (menus for frontends)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request, status
from starlette.responses import Response

from app.authz.dependencies import get_principal
from app.core.errors import problem_responses
from app.core.pagination import Page, PageDep
from app.core.routing import ModuleRouter
from app.modules.navigation.dependencies import (
    ModulesCreate,
    ModulesDelete,
    ModulesRead,
    ModulesUpdate,
    NavigationServiceDep,
    RoutesCreate,
    RoutesDelete,
    RoutesRead,
    RoutesUpdate,
    sidebar_cache,
)
from app.modules.navigation.schemas import (
    ModuleCreate,
    ModulePublic,
    ModuleUpdate,
    RouteCreate,
    RoutePublic,
    RouteUpdate,
    SidebarSection,
)

_PROBLEM = problem_responses(401, 403, 422)
_NOT_FOUND = problem_responses(401, 403, 404, 422)
_WRITE = problem_responses(401, 403, 404, 409, 422)

ForceQuery = Annotated[bool, Query(description="Also delete what depends on it")]

_VARY = {"Vary": "Accept-Encoding"}
_GZIP_HEADERS = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}


def accepts_gzip(header: str | None) -> bool:
    """Whether Accept-Encoding admits gzip: listed (or `*`) with a non-zero q."""
    if not header:
        return False
    weights: dict[str, float] = {}
    for part in header.split(","):
        coding, _, params = part.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding.strip().lower()] = weight
    return weights.get("gzip", weights.get("*", 0.0)) > 0


modules_router = ModuleRouter(prefix="/modules", tags=["navigation"])
routes_router = ModuleRouter(prefix="/routes", tags=["navigation"])


def _route_page(rows: Any, total: int, limit: int, offset: int) -> Page[RoutePublic]:
    return Page(items=[RoutePublic.of(r) for r in rows], total=total, limit=limit, offset=offset)


# ---- modules ---------------------------------------------------------------------------------
@modules_router.get("", response_model=Page[ModulePublic], responses=_PROBLEM)
async def list_modules(
    _: ModulesRead,
    service: NavigationServiceDep,
    page: PageDep,
    is_active: bool | None = None,
) -> Page[ModulePublic]:
    rows, total = await service.list_modules(
        is_active=is_active, limit=page.limit, offset=page.offset
    )
    return Page(
        items=[ModulePublic.of(m) for m in rows], total=total, limit=page.limit, offset=page.offset
    )


@modules_router.post(
    "", response_model=ModulePublic, status_code=status.HTTP_201_CREATED, responses=_WRITE
)
async def create_module(
    _: ModulesCreate, service: NavigationServiceDep, body: ModuleCreate
) -> ModulePublic:
    return ModulePublic.of(await service.create_module(body))


@modules_router.get("/{module_id}", response_model=ModulePublic, responses=_NOT_FOUND)
async def get_module(
    _: ModulesRead, service: NavigationServiceDep, module_id: uuid.UUID
) -> ModulePublic:
    return ModulePublic.of(await service.get_module(module_id))


@modules_router.put("/{module_id}", response_model=ModulePublic, responses=_WRITE)
async def update_module(
    _: ModulesUpdate, service: NavigationServiceDep, module_id: uuid.UUID, body: ModuleUpdate
) -> ModulePublic:
    return ModulePublic.of(await service.update_module(module_id, body))


@modules_router.delete("/{module_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_WRITE)
async def delete_module(
    _: ModulesDelete, service: NavigationServiceDep, module_id: uuid.UUID, force: ForceQuery = False
) -> Response:
    await service.delete_module(module_id, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@modules_router.patch(
    "/{module_id}/toggle-status", response_model=ModulePublic, responses=_NOT_FOUND
)
async def toggle_module_status(
    _: ModulesUpdate, service: NavigationServiceDep, module_id: uuid.UUID
) -> ModulePublic:
    return ModulePublic.of(await service.toggle_module(module_id))


@modules_router.get("/{module_id}/routes", response_model=Page[RoutePublic], responses=_NOT_FOUND)
async def list_module_routes(
    _: ModulesRead, service: NavigationServiceDep, module_id: uuid.UUID, page: PageDep
) -> Page[RoutePublic]:
    rows, total = await service.module_routes(module_id, limit=page.limit, offset=page.offset)
    return _route_page(rows, total, page.limit, page.offset)


# ---- routes: fixed paths first, so /{route_id} never captures them ---------------------------
@routes_router.get(
    "/sidebar",
    response_model=None,
    responses={
        200: {"model": list[SidebarSection], "description": "The caller's menu"},
        **problem_responses(401),  # a token that is sent must be valid (none is the guest)
    },
)
async def sidebar(request: Request) -> Response:
    """The navigation tree for the caller (any user, or the anonymous guest)."""
    # Every frontend page load asks for this, so it is the hottest authenticated path. The
    # principal and the cache are looked up by direct calls rather than as dependencies:
    # FastAPI's dependency solving per request would cost more than the rest of the handler.
    principal = await get_principal(request)
    cache = sidebar_cache(request)
    if accepts_gzip(request.headers.get("accept-encoding")):
        body = await cache.render(principal.permissions, compressed=True)
        return Response(body, media_type="application/json", headers=_GZIP_HEADERS)
    body = await cache.render(principal.permissions)
    return Response(body, media_type="application/json", headers=_VARY)


@routes_router.get("/top-level", response_model=Page[RoutePublic], responses=_PROBLEM)
async def list_top_level_routes(
    _: RoutesRead,
    service: NavigationServiceDep,
    page: PageDep,
    module_id: uuid.UUID | None = None,
) -> Page[RoutePublic]:
    rows, total = await service.list_routes(
        top_level=True, module_id=module_id, limit=page.limit, offset=page.offset
    )
    return _route_page(rows, total, page.limit, page.offset)


@routes_router.get("/module/{module_id}", response_model=Page[RoutePublic], responses=_NOT_FOUND)
async def list_routes_of_module(
    _: RoutesRead, service: NavigationServiceDep, module_id: uuid.UUID, page: PageDep
) -> Page[RoutePublic]:
    rows, total = await service.module_routes(module_id, limit=page.limit, offset=page.offset)
    return _route_page(rows, total, page.limit, page.offset)


@routes_router.get(
    "/parent/{parent_id}/children", response_model=Page[RoutePublic], responses=_NOT_FOUND
)
async def list_children(
    _: RoutesRead, service: NavigationServiceDep, parent_id: uuid.UUID, page: PageDep
) -> Page[RoutePublic]:
    rows, total = await service.children(parent_id, limit=page.limit, offset=page.offset)
    return _route_page(rows, total, page.limit, page.offset)


@routes_router.get("", response_model=Page[RoutePublic], responses=_PROBLEM)
async def list_routes(
    _: RoutesRead,
    service: NavigationServiceDep,
    page: PageDep,
    module_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    is_active: bool | None = None,
    show_in_sidebar: bool | None = None,
) -> Page[RoutePublic]:
    rows, total = await service.list_routes(
        module_id=module_id,
        parent_id=parent_id,
        is_active=is_active,
        show_in_sidebar=show_in_sidebar,
        limit=page.limit,
        offset=page.offset,
    )
    return _route_page(rows, total, page.limit, page.offset)


@routes_router.post(
    "", response_model=RoutePublic, status_code=status.HTTP_201_CREATED, responses=_WRITE
)
async def create_route(
    _: RoutesCreate, service: NavigationServiceDep, body: RouteCreate
) -> RoutePublic:
    return RoutePublic.of(await service.create_route(body))


@routes_router.get("/{route_id}", response_model=RoutePublic, responses=_NOT_FOUND)
async def get_route(
    _: RoutesRead, service: NavigationServiceDep, route_id: uuid.UUID
) -> RoutePublic:
    return RoutePublic.of(await service.get_route(route_id))


@routes_router.put("/{route_id}", response_model=RoutePublic, responses=_WRITE)
async def update_route(
    _: RoutesUpdate, service: NavigationServiceDep, route_id: uuid.UUID, body: RouteUpdate
) -> RoutePublic:
    return RoutePublic.of(await service.update_route(route_id, body))


@routes_router.delete("/{route_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_WRITE)
async def delete_route(
    _: RoutesDelete, service: NavigationServiceDep, route_id: uuid.UUID, force: ForceQuery = False
) -> Response:
    await service.delete_route(route_id, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@routes_router.patch("/{route_id}/toggle-status", response_model=RoutePublic, responses=_NOT_FOUND)
async def toggle_route_status(
    _: RoutesUpdate, service: NavigationServiceDep, route_id: uuid.UUID
) -> RoutePublic:
    return RoutePublic.of(await service.toggle_route(route_id, "is_active"))


@routes_router.patch("/{route_id}/toggle-sidebar", response_model=RoutePublic, responses=_NOT_FOUND)
async def toggle_route_sidebar(
    _: RoutesUpdate, service: NavigationServiceDep, route_id: uuid.UUID
) -> RoutePublic:
    return RoutePublic.of(await service.toggle_route(route_id, "show_in_sidebar"))


# /routes first: the sidebar is the hot path, and routers are matched in order.
routers = (routes_router, modules_router)
