"""Navigation: menu modules and route trees, and the per-caller sidebar.

Rules
* A route belongs to one module; its parent (if any) is a route of the same module. Moving a
  route to another module moves its whole subtree with it.
* The route tree has no cycles: setting a parent that is the route itself or one of its
  descendants is refused with 409 naming the path.
* Deleting a module that still has routes, or a route that still has children, is refused with
  409 unless `force` is given, which deletes them too (listed in the audit row).
* Every change is audited and bumps the authorization version (the sidebar cache of every
  process is keyed by it).

The sidebar (`GET /routes/sidebar`)
* Only active modules, active routes shown in the sidebar, and routes whose required permission
  the caller holds (no required permission = everyone, the guest included).
* An inactive route or one hidden from the sidebar hides its whole subtree.
* A route whose permission the caller lacks is kept as a non-clickable group node (`path` null,
  `clickable` false) when, and only when, one of its descendants is visible: the caller can
  reach the child, and the group label reveals nothing the child's position does not.
* Ordered by module order, then route order, then label (then id, for stability).
* Per process: the active navigation is loaded once per authorization version, and the rendered
  JSON is kept per distinct permission set, so the hot path is two dictionary look-ups.
"""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.permissions import PermissionSet
from app.authz.versioning import bump_authz_version
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.runtime import Runtime
from app.modules.audit.service import AuditService, diff
from app.modules.navigation.models import NavModule, NavRoute
from app.modules.navigation.repository import NavigationRepository, load_navigation
from app.modules.navigation.schemas import (
    ModuleCreate,
    ModuleUpdate,
    RouteCreate,
    RouteUpdate,
)

MODULE_FIELDS = ("name", "label", "icon", "order", "description", "is_active")
ROUTE_FIELDS = (
    "path",
    "name",
    "label",
    "icon",
    "order",
    "module_id",
    "parent_id",
    "required_permission",
    "show_in_sidebar",
    "is_active",
    "meta",
)


def _module_state(module: NavModule) -> dict[str, Any]:
    return {f: getattr(module, f) for f in MODULE_FIELDS}


def _route_state(route: NavRoute) -> dict[str, Any]:
    state = {f: getattr(route, f) for f in ROUTE_FIELDS}
    state["metadata"] = state.pop("meta")
    return state


class NavigationService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.repository = NavigationRepository(session)
        self.audit = AuditService(session)

    async def _changed(self) -> None:
        await bump_authz_version(self.session, self.runtime.state)

    # ---- modules ------------------------------------------------------------------------
    async def get_module(self, module_id: uuid.UUID) -> NavModule:
        module = await self.repository.get_module(module_id)
        if module is None:
            raise NotFound("Module not found", code="module_not_found")
        return module

    async def list_modules(
        self, *, is_active: bool | None, limit: int, offset: int
    ) -> tuple[Sequence[NavModule], int]:
        return await self.repository.list_modules(is_active=is_active, limit=limit, offset=offset)

    async def _ensure_module_name_free(self, name: str, own_id: uuid.UUID | None = None) -> None:
        existing = await self.repository.get_module_by_name(name)
        if existing is not None and existing.id != own_id:
            raise Conflict(
                "A module with this name already exists",
                code="module_exists",
                errors=[{"field": "name", "message": "name is already taken"}],
            )

    async def create_module(self, data: ModuleCreate) -> NavModule:
        await self._ensure_module_name_free(data.name)
        module = NavModule(**data.model_dump())
        await self.repository.add(module)
        await self._changed()
        self.audit.record(
            "module.create", "module", module.id, changes=diff(None, _module_state(module))
        )
        return module

    async def update_module(self, module_id: uuid.UUID, data: ModuleUpdate) -> NavModule:
        module = await self.get_module(module_id)
        values = data.model_dump(exclude_unset=True)
        if "name" in values:
            await self._ensure_module_name_free(values["name"], module.id)
        before = _module_state(module)
        for key, value in values.items():
            setattr(module, key, value)
        await self.repository.flush()
        changes = diff(before, _module_state(module))
        if changes:
            await self._changed()
            self.audit.record("module.update", "module", module.id, changes=changes)
        return module

    async def toggle_module(self, module_id: uuid.UUID) -> NavModule:
        module = await self.get_module(module_id)
        before = _module_state(module)
        module.is_active = not module.is_active
        await self.repository.flush()
        await self._changed()
        self.audit.record(
            "module.toggle_status", "module", module.id, changes=diff(before, _module_state(module))
        )
        return module

    async def delete_module(self, module_id: uuid.UUID, *, force: bool) -> None:
        module = await self.get_module(module_id)
        count = await self.repository.count_module_routes(module.id)
        if count and not force:
            raise Conflict(
                f"The module still has {count} route(s); delete them first or use force=true",
                code="module_has_routes",
                extra={"route_count": count},
            )
        before = _module_state(module)
        await self.repository.delete_module(module)
        await self._changed()
        self.audit.record(
            "module.delete",
            "module",
            module_id,
            changes=diff(before, None),
            details={"deleted_routes": count, "force": force},
        )

    # ---- routes -------------------------------------------------------------------------
    async def get_route(self, route_id: uuid.UUID) -> NavRoute:
        route = await self.repository.get_route(route_id)
        if route is None:
            raise NotFound("Route not found", code="route_not_found")
        return route

    async def list_routes(
        self,
        *,
        module_id: uuid.UUID | None = None,
        parent_id: uuid.UUID | None = None,
        top_level: bool = False,
        is_active: bool | None = None,
        show_in_sidebar: bool | None = None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[NavRoute], int]:
        return await self.repository.list_routes(
            module_id=module_id,
            parent_id=parent_id,
            top_level=top_level,
            is_active=is_active,
            show_in_sidebar=show_in_sidebar,
            limit=limit,
            offset=offset,
        )

    async def module_routes(
        self, module_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[NavRoute], int]:
        await self.get_module(module_id)
        return await self.repository.list_routes(module_id=module_id, limit=limit, offset=offset)

    async def children(
        self, parent_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[NavRoute], int]:
        await self.get_route(parent_id)
        return await self.repository.list_routes(parent_id=parent_id, limit=limit, offset=offset)

    async def _ensure_route_name_free(self, name: str, own_id: uuid.UUID | None = None) -> None:
        existing = await self.repository.get_route_by_name(name)
        if existing is not None and existing.id != own_id:
            raise Conflict(
                "A route with this name already exists",
                code="route_exists",
                errors=[{"field": "name", "message": "name is already taken"}],
            )

    async def _module_for_write(self, module_id: uuid.UUID) -> NavModule:
        module = await self.repository.get_module(module_id)
        if module is None:
            raise ValidationFailed.for_field("module_id", "Unknown module", code="module_not_found")
        return module

    async def _parent_for_write(self, parent_id: uuid.UUID, module_id: uuid.UUID) -> NavRoute:
        parent = await self.repository.get_route(parent_id)
        if parent is None:
            raise ValidationFailed.for_field("parent_id", "Unknown route", code="route_not_found")
        if parent.module_id != module_id:
            raise ValidationFailed.for_field(
                "parent_id", "The parent route belongs to another module", code="parent_module"
            )
        return parent

    async def create_route(self, data: RouteCreate) -> NavRoute:
        await self._module_for_write(data.module_id)
        if data.parent_id is not None:
            await self._parent_for_write(data.parent_id, data.module_id)
        await self._ensure_route_name_free(data.name)
        values = data.model_dump(exclude={"metadata"})
        route = NavRoute(**values, meta=dict(data.metadata))
        await self.repository.add(route)
        await self._changed()
        self.audit.record(
            "route.create", "route", route.id, changes=diff(None, _route_state(route))
        )
        return route

    async def update_route(self, route_id: uuid.UUID, data: RouteUpdate) -> NavRoute:
        route = await self.get_route(route_id)
        values = data.model_dump(exclude_unset=True)
        if "parent_id" in values or "module_id" in values:
            # Bump (an UPDATE of the one authz_state row) before reading the tree: concurrent
            # re-parentings then run one after the other and the cycle check sees the winner's
            # committed tree, so two moves that are each fine alone cannot form a cycle together.
            await self._changed()
        if "metadata" in values:
            values["meta"] = values.pop("metadata")
        if "name" in values:
            await self._ensure_route_name_free(values["name"], route.id)
        module_id = values.get("module_id", route.module_id)
        parent_id = values.get("parent_id", route.parent_id)
        if module_id != route.module_id:
            await self._module_for_write(module_id)
        if parent_id is not None and ("parent_id" in values or module_id != route.module_id):
            await self._check_no_cycle(route, parent_id)
            await self._parent_for_write(parent_id, module_id)

        before = _route_state(route)
        for key, value in values.items():
            setattr(route, key, value)
        moved: list[uuid.UUID] = []
        if module_id != before["module_id"]:
            moved = await self._descendants(route.id)
            await self.repository.set_module_of(moved, module_id)
        await self.repository.flush()
        changes = diff(before, _route_state(route))
        if changes:
            await self._changed()
            self.audit.record(
                "route.update",
                "route",
                route.id,
                changes=changes,
                details={"moved_descendants": [str(d) for d in moved]} if moved else None,
            )
        return route

    async def _check_no_cycle(self, route: NavRoute, parent_id: uuid.UUID) -> None:
        """Refuse a parent that is the route itself or one of its descendants."""
        if parent_id == route.id:
            raise Conflict(
                f"A route cannot be its own parent: {route.name} -> {route.name}",
                code="route_cycle",
                extra={"cycle": [route.name, route.name]},
            )
        links = await self.repository.route_links()
        chain = [route.name]
        path: list[str] = []
        current: uuid.UUID | None = parent_id
        seen: set[uuid.UUID] = set()
        while current is not None and current not in seen:
            seen.add(current)
            if current not in links:
                return  # unknown parent: reported by the parent check
            parent, name = links[current]
            path.append(name)
            if current == route.id:
                cycle = chain + path  # route -> new parent -> ... -> route
                raise Conflict(
                    "Setting this parent would create a cycle: " + " -> ".join(cycle),
                    code="route_cycle",
                    extra={"cycle": cycle},
                )
            current = parent

    async def _descendants(self, route_id: uuid.UUID) -> list[uuid.UUID]:
        links = await self.repository.route_links()
        children: dict[uuid.UUID, list[uuid.UUID]] = {}
        for rid, (parent, _) in links.items():
            if parent is not None:
                children.setdefault(parent, []).append(rid)
        result: list[uuid.UUID] = []
        stack = list(children.get(route_id, []))
        while stack:
            rid = stack.pop()
            if rid in result:
                continue
            result.append(rid)
            stack.extend(children.get(rid, []))
        return result

    async def toggle_route(self, route_id: uuid.UUID, attribute: str) -> NavRoute:
        route = await self.get_route(route_id)
        before = _route_state(route)
        setattr(route, attribute, not getattr(route, attribute))
        await self.repository.flush()
        await self._changed()
        action = "route.toggle_status" if attribute == "is_active" else "route.toggle_sidebar"
        self.audit.record(action, "route", route.id, changes=diff(before, _route_state(route)))
        return route

    async def delete_route(self, route_id: uuid.UUID, *, force: bool) -> None:
        route = await self.get_route(route_id)
        descendants = await self._descendants(route.id)
        if descendants and not force:
            raise Conflict(
                f"The route still has {len(descendants)} descendant route(s); "
                "delete them first or use force=true",
                code="route_has_children",
                extra={"descendant_count": len(descendants)},
            )
        before = _route_state(route)
        await self.repository.delete_routes([route.id, *descendants])
        await self._changed()
        self.audit.record(
            "route.delete",
            "route",
            route_id,
            changes=diff(before, None),
            details={"deleted_descendants": [str(d) for d in descendants], "force": force},
        )


# ---- the sidebar -----------------------------------------------------------------------------
@dataclass(slots=True)
class _Node:
    public: dict[str, Any]  # the node's serialized fields, children excepted
    permission: str | None
    children: list[_Node] = field(default_factory=list)


@dataclass(slots=True)
class _Section:
    module: dict[str, Any]
    roots: list[_Node]


MAX_RENDERED = 1024


class NavigationSnapshot:
    """The active navigation at one authorization version, and its renderings per permission
    set (bounded: cleared when more than MAX_RENDERED distinct sets were seen)."""

    def __init__(self, version: int, sections: list[_Section]) -> None:
        self.version = version
        self.sections = sections
        self.rendered: dict[frozenset[str], bytes] = {}
        self.compressed: dict[frozenset[str], bytes] = {}

    @classmethod
    def build(
        cls, version: int, modules: list[dict[str, Any]], routes: list[dict[str, Any]]
    ) -> NavigationSnapshot:
        nodes: dict[Any, _Node] = {}
        for row in routes:  # already in display order
            if not row["show_in_sidebar"]:
                continue  # hidden with its subtree: its children find no parent below
            nodes[row["id"]] = _Node(
                public={
                    "id": str(row["id"]),
                    "name": row["name"],
                    "label": row["label"],
                    "path": row["path"],
                    "icon": row["icon"],
                    "order": row["order"],
                    "clickable": True,
                    "metadata": row["meta"] or {},
                },
                permission=row["required_permission"],
            )
        roots: dict[Any, list[_Node]] = {m["id"]: [] for m in modules}
        for row in routes:
            node = nodes.get(row["id"])
            if node is None:
                continue
            parent_id = row["parent_id"]
            if parent_id is None:
                roots.setdefault(row["module_id"], []).append(node)
            elif parent_id in nodes:
                nodes[parent_id].children.append(node)
            # else: the parent is inactive or hidden, and so is this subtree
        sections = [
            _Section(
                module={
                    "id": str(m["id"]),
                    "name": m["name"],
                    "label": m["label"],
                    "icon": m["icon"],
                    "order": m["order"],
                    "description": m["description"],
                },
                roots=roots.get(m["id"], []),
            )
            for m in modules
        ]
        return cls(version, sections)

    def render(self, permissions: PermissionSet) -> bytes:
        key = permissions.names
        body = self.rendered.get(key)
        if body is not None:
            return body
        allows = permissions.allows

        def visit(node: _Node) -> dict[str, Any] | None:
            children = [c for c in (visit(child) for child in node.children) if c is not None]
            if node.permission is None or allows(node.permission):
                return {**node.public, "children": children}
            if children:
                return {**node.public, "path": None, "clickable": False, "children": children}
            return None

        tree = []
        for section in self.sections:
            visible = [n for n in (visit(root) for root in section.roots) if n is not None]
            if visible:
                tree.append({"module": section.module, "routes": visible})
        body = orjson.dumps(tree)
        if len(self.rendered) >= MAX_RENDERED:
            self.rendered.clear()
            self.compressed.clear()
        self.rendered[key] = body
        return body

    def render_gzip(self, permissions: PermissionSet) -> bytes:
        """The same body, gzip-compressed once per permission set (menus compress ~10x, and
        the hot path then writes a tenth of the bytes). Holds no secret and echoes no input,
        so compression leaks nothing (BREACH needs both)."""
        key = permissions.names
        body = self.compressed.get(key)
        if body is None:
            body = gzip.compress(self.render(permissions), compresslevel=6, mtime=0)
            self.compressed[key] = body
        return body


class SidebarCache:
    """Per process. Valid while the process's known authorization version is unchanged."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.snapshot: NavigationSnapshot | None = None
        self._lock = asyncio.Lock()

    async def render(self, permissions: PermissionSet, *, compressed: bool = False) -> bytes:
        """The caller's sidebar as JSON bytes (gzip-compressed when `compressed`)."""
        snapshot = self.snapshot
        if snapshot is None or snapshot.version != self.runtime.state.authz_version:
            snapshot = await self._refresh()
        if compressed:
            return snapshot.render_gzip(permissions)
        return snapshot.render(permissions)

    async def _refresh(self) -> NavigationSnapshot:
        runtime = self.runtime
        async with self._lock:
            current = self.snapshot
            if current is not None and current.version == runtime.state.authz_version:
                return current  # another request rebuilt it while we waited
            async with runtime.engine.connect() as conn:
                version, modules, routes = await load_navigation(conn)
            snapshot = NavigationSnapshot.build(version, modules, routes)
            # Kept only when it matches what this process knows; otherwise it serves this
            # request and the next one rebuilds (the state catches up within a poll interval).
            if version == runtime.state.authz_version:
                self.snapshot = snapshot
            return snapshot
