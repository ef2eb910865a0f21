"""The default navigation of the built-in modules. Idempotent: creates only the modules and
routes missing by name, and never changes what an administrator edited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.modules.navigation.models import NavModule, NavRoute


@dataclass(frozen=True)
class _Module:
    name: str
    label: str
    icon: str
    order: int
    description: str


@dataclass(frozen=True)
class _Route:
    module: str
    name: str
    label: str
    path: str
    icon: str
    order: int
    permission: str | None


DEFAULT_MODULES: tuple[_Module, ...] = (
    _Module("general", "General", "home", 0, "Home and the caller's own account"),
    _Module("patients", "Patients", "heart-pulse", 10, "Patient records"),
    _Module("administration", "Administration", "settings", 20, "Users, access and audit"),
)

DEFAULT_ROUTES: tuple[_Route, ...] = (
    _Route("general", "home", "Home", "/", "home", 0, None),
    _Route("general", "account", "My account", "/account", "user", 10, "profile:read"),
    _Route("patients", "patients", "Patients", "/patients", "users", 0, "patient:read"),
    _Route("patients", "patient-lookup", "Patient status", "/patients/lookup", "search", 10, None),
    _Route("administration", "users", "Users", "/admin/users", "user-cog", 0, "user:read"),
    _Route("administration", "roles", "Roles", "/admin/roles", "shield", 10, "role:read"),
    _Route(
        "administration",
        "permissions",
        "Permissions",
        "/admin/permissions",
        "key",
        20,
        "permission:read",
    ),
    _Route("administration", "groups", "Groups", "/admin/groups", "users-round", 30, "group:read"),
    _Route("administration", "policies", "Policies", "/admin/policies", "scale", 40, "policy:read"),
    _Route(
        "administration", "navigation", "Navigation", "/admin/navigation", "menu", 50, "route:read"
    ),
    _Route("administration", "audit", "Audit trail", "/admin/audit", "scroll", 60, "audit:read"),
)


async def seed(
    session: AsyncSession, *, settings: Any, hasher: Any, demo: bool, report: Any
) -> None:
    modules = {m.name: m for m in (await session.scalars(select(NavModule))).all()}
    for spec in DEFAULT_MODULES:
        if spec.name not in modules:
            module = NavModule(
                name=spec.name,
                label=spec.label,
                icon=spec.icon,
                order=spec.order,
                description=spec.description,
            )
            session.add(module)
            modules[spec.name] = module
    await session.flush()

    existing = set((await session.scalars(select(col(NavRoute.name)))).all())
    for route in DEFAULT_ROUTES:
        if route.name in existing:
            continue
        session.add(
            NavRoute(
                module_id=modules[route.module].id,
                name=route.name,
                label=route.label,
                path=route.path,
                icon=route.icon,
                order=route.order,
                required_permission=route.permission,
            )
        )
    await session.flush()
