"""SQL for navigation modules and routes. No decisions here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.modules.navigation.models import NavModule, NavRoute

_MODULE_ORDER = (col(NavModule.order), col(NavModule.label), col(NavModule.id))
_ROUTE_ORDER = (col(NavRoute.order), col(NavRoute.label), col(NavRoute.id))

_VERSION_SQL = text("SELECT version FROM authz_state WHERE id = 1")


class NavigationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- modules ------------------------------------------------------------------------
    async def get_module(self, module_id: uuid.UUID) -> NavModule | None:
        return await self.session.get(NavModule, module_id)

    async def get_module_by_name(self, name: str) -> NavModule | None:
        return await self.session.scalar(select(NavModule).where(col(NavModule.name) == name))

    async def list_modules(
        self, *, is_active: bool | None, limit: int, offset: int
    ) -> tuple[Sequence[NavModule], int]:
        conditions: list[ColumnElement[bool]] = []
        if is_active is not None:
            conditions.append(col(NavModule.is_active) == is_active)
        total = await self.session.scalar(
            select(func.count()).select_from(NavModule).where(*conditions)
        )
        rows = await self.session.scalars(
            select(NavModule)
            .where(*conditions)
            .order_by(*_MODULE_ORDER)
            .limit(limit)
            .offset(offset)
        )
        return rows.all(), int(total or 0)

    async def count_module_routes(self, module_id: uuid.UUID) -> int:
        total = await self.session.scalar(
            select(func.count()).select_from(NavRoute).where(col(NavRoute.module_id) == module_id)
        )
        return int(total or 0)

    async def delete_module(self, module: NavModule) -> None:
        await self.session.execute(delete(NavRoute).where(col(NavRoute.module_id) == module.id))
        await self.session.delete(module)
        await self.session.flush()

    # ---- routes -------------------------------------------------------------------------
    async def get_route(self, route_id: uuid.UUID) -> NavRoute | None:
        return await self.session.get(NavRoute, route_id)

    async def get_route_by_name(self, name: str) -> NavRoute | None:
        return await self.session.scalar(select(NavRoute).where(col(NavRoute.name) == name))

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
        conditions: list[ColumnElement[bool]] = []
        if module_id is not None:
            conditions.append(col(NavRoute.module_id) == module_id)
        if parent_id is not None:
            conditions.append(col(NavRoute.parent_id) == parent_id)
        if top_level:
            conditions.append(col(NavRoute.parent_id).is_(None))
        if is_active is not None:
            conditions.append(col(NavRoute.is_active) == is_active)
        if show_in_sidebar is not None:
            conditions.append(col(NavRoute.show_in_sidebar) == show_in_sidebar)
        total = await self.session.scalar(
            select(func.count()).select_from(NavRoute).where(*conditions)
        )
        rows = await self.session.scalars(
            select(NavRoute)
            .where(*conditions)
            .order_by(col(NavRoute.module_id), *_ROUTE_ORDER)
            .limit(limit)
            .offset(offset)
        )
        return rows.all(), int(total or 0)

    async def route_links(self) -> dict[uuid.UUID, tuple[uuid.UUID | None, str]]:
        """{route id: (parent id, name)} for every route: what tree checks walk."""
        rows = await self.session.execute(
            select(col(NavRoute.id), col(NavRoute.parent_id), col(NavRoute.name))
        )
        return {rid: (parent, name) for rid, parent, name in rows.tuples()}

    async def set_module_of(self, route_ids: Sequence[uuid.UUID], module_id: uuid.UUID) -> None:
        if route_ids:
            await self.session.execute(
                update(NavRoute)
                .where(col(NavRoute.id).in_(list(route_ids)))
                .values(module_id=module_id),
                execution_options={"synchronize_session": "fetch"},
            )

    async def delete_routes(self, route_ids: Sequence[uuid.UUID]) -> None:
        if route_ids:
            await self.session.execute(
                delete(NavRoute).where(col(NavRoute.id).in_(list(route_ids))),
                execution_options={"synchronize_session": "fetch"},
            )
            await self.session.flush()

    async def add(self, row: NavModule | NavRoute) -> None:
        self.session.add(row)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()


async def load_navigation(
    conn: AsyncConnection,
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """The authorization version, then the active modules and the active routes of active
    modules, in display order. Core, not ORM: this rebuilds the per-process sidebar cache.
    The version is read first, so the data is never older than the version it is filed under.
    """
    version = int((await conn.execute(_VERSION_SQL)).scalar_one())
    modules = (
        (
            await conn.execute(
                select(
                    col(NavModule.id),
                    col(NavModule.name),
                    col(NavModule.label),
                    col(NavModule.icon),
                    col(NavModule.order),
                    col(NavModule.description),
                )
                .where(col(NavModule.is_active).is_(True))
                .order_by(*_MODULE_ORDER)
            )
        )
        .mappings()
        .all()
    )
    routes = (
        (
            await conn.execute(
                select(
                    col(NavRoute.id),
                    col(NavRoute.module_id),
                    col(NavRoute.parent_id),
                    col(NavRoute.name),
                    col(NavRoute.label),
                    col(NavRoute.path),
                    col(NavRoute.icon),
                    col(NavRoute.order),
                    col(NavRoute.required_permission),
                    col(NavRoute.show_in_sidebar),
                    col(NavRoute.meta),
                )
                .join(NavModule, col(NavModule.id) == col(NavRoute.module_id))
                .where(col(NavRoute.is_active).is_(True), col(NavModule.is_active).is_(True))
                .order_by(*_ROUTE_ORDER)
            )
        )
        .mappings()
        .all()
    )
    return version, [dict(m) for m in modules], [dict(r) for r in routes]
