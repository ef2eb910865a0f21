"""Bringing a database to a working state: migrations, the permission catalogue, built-in
roles, module seed data, the super-admin and (on request) demo data. Idempotent: running it
again adds what is missing and never undoes an administrator's later changes."""

from __future__ import annotations

import asyncio
import importlib
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.authz.catalog import BUILTIN_ROLES, AccessControl, PermissionSpec, RoleTemplate
from app.authz.models import AuthzState, Permission, Role, RolePermission, UserRole
from app.authz.permissions import split_permission
from app.authz.principal import SUPERADMIN_ROLE
from app.core.config import Settings
from app.core.database import create_null_pool_engine, create_session_factory
from app.core.security import PasswordHasher
from app.modules import MODULE_NAMES
from app.modules.audit.service import AuditService, diff
from app.modules.users.models import User

ROOT = Path(__file__).resolve().parent.parent
SUPERADMIN_USERNAME = "superadmin"
WILDCARD_PERMISSION = PermissionSpec("*:*", "Everything")


@dataclass
class SeedReport:
    created_permissions: int = 0
    created_roles: list[str] = field(default_factory=list)
    printed_credentials: list[tuple[str, str]] = field(default_factory=list)


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    config.attributes["skip_logging"] = True
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Alembic upgrade (synchronous entry point; runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


def module_access_controls() -> list[AccessControl]:
    result = []
    for name in MODULE_NAMES:
        module = importlib.import_module(f"app.modules.{name}.access_control")
        result.append(module.ACCESS_CONTROL)
    return result


def _module_seeders() -> list[ModuleType]:
    seeders = []
    for name in MODULE_NAMES:
        try:
            seeders.append(importlib.import_module(f"app.modules.{name}.seed"))
        except ModuleNotFoundError as exc:
            if exc.name != f"app.modules.{name}.seed":
                raise
    return seeders


def random_password(length: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits + "-_.!@#"
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in value) and any(c.isupper() for c in value):
            return value


async def seed_catalog(session: AsyncSession) -> SeedReport:
    report = SeedReport()
    controls = module_access_controls()
    specs: dict[str, PermissionSpec] = {WILDCARD_PERMISSION.name: WILDCARD_PERMISSION}
    for control in controls:
        for spec in control.permissions:
            specs.setdefault(spec.name, spec)

    templates: dict[str, RoleTemplate] = {t.name: t for t in BUILTIN_ROLES}
    grants: dict[str, set[str]] = {name: set(t.permissions) for name, t in templates.items()}
    for control in controls:
        for template in control.roles:
            templates.setdefault(template.name, template)
            grants.setdefault(template.name, set()).update(template.permissions)
        for role_name, permissions in control.role_grants.items():
            grants.setdefault(role_name, set()).update(permissions)
    # Wildcards that templates grant ("user:*") are catalogue entries too.
    for granted in sorted(set().union(*grants.values())):
        resource, _ = split_permission(granted)
        specs.setdefault(granted, PermissionSpec(granted, f"Every action on {resource}"))

    existing = {p.name: p for p in (await session.scalars(select(Permission))).all()}
    for name, spec in specs.items():
        if name in existing:
            existing[name].is_system = True
            continue
        resource, action = split_permission(name)
        permission = Permission(
            name=name,
            resource=resource,
            action=action,
            category=resource,
            description=spec.description,
            is_system=True,
        )
        session.add(permission)
        existing[name] = permission
        report.created_permissions += 1
    await session.flush()

    roles = {r.name: r for r in (await session.scalars(select(Role))).all()}
    for name, template in templates.items():
        if name in roles:
            continue
        role = Role(name=name, description=template.description, is_system=True)
        session.add(role)
        await session.flush()
        roles[name] = role
        report.created_roles.append(name)
        # Template grants are applied when the role is created only: an administrator who
        # later narrows a built-in role keeps it narrowed across restarts.
        for permission_name in sorted(grants.get(name, ())):
            session.add(RolePermission(role_id=role.id, permission_id=existing[permission_name].id))
    # The super-admin role can never be emptied.
    superadmin = roles[SUPERADMIN_ROLE]
    wildcard = existing["*:*"]
    held = await session.scalar(
        select(RolePermission).where(
            col(RolePermission.role_id) == superadmin.id,
            col(RolePermission.permission_id) == wildcard.id,
        )
    )
    if held is None:
        session.add(RolePermission(role_id=superadmin.id, permission_id=wildcard.id))
    superadmin.is_active = True
    wildcard.is_active = True
    await session.flush()
    return report


async def ensure_user(
    session: AsyncSession,
    hasher: PasswordHasher,
    *,
    username: str,
    email: str,
    password: str,
    roles: Iterable[str],
    full_name: str | None = None,
    attributes: dict[str, str] | None = None,
) -> tuple[User, bool]:
    user = await session.scalar(select(User).where(col(User.username) == username.lower()))
    if user is not None:
        return user, False
    user = User(
        username=username.lower(),
        email=email.lower(),
        full_name=full_name,
        password_hash=await hasher.hash(password),
        is_verified=True,
        attributes=attributes or {},
    )
    session.add(user)
    await session.flush()
    role_rows = (await session.scalars(select(Role).where(col(Role.name).in_(list(roles))))).all()
    for role in role_rows:
        session.add(UserRole(user_id=user.id, role_id=role.id))
    await session.flush()
    return user, True


async def bump_version(session: AsyncSession) -> None:
    state = await session.get(AuthzState, 1)
    if state is not None:
        state.version += 1


async def seed(settings: Settings, *, demo: bool = False) -> SeedReport:
    engine = create_null_pool_engine(settings.DATABASE_URL)
    hasher = PasswordHasher(settings)
    try:
        async with create_session_factory(engine)() as session:
            report = await seed_catalog(session)
            password = settings.SUPERADMIN_PASSWORD or random_password()
            _, created = await ensure_user(
                session,
                hasher,
                username=SUPERADMIN_USERNAME,
                email=settings.SUPERADMIN_EMAIL,
                password=password,
                roles=[SUPERADMIN_ROLE],
                full_name="Super Administrator",
            )
            if created and not settings.SUPERADMIN_PASSWORD:
                report.printed_credentials.append((SUPERADMIN_USERNAME, password))
            for seeder in _module_seeders():
                await seeder.seed(
                    session, settings=settings, hasher=hasher, demo=demo, report=report
                )
            if demo:
                await seed_demo_users(session, settings, hasher, report)
            await bump_version(session)
            await session.commit()
    finally:
        await engine.dispose()
    return report


async def seed_demo_users(
    session: AsyncSession, settings: Settings, hasher: PasswordHasher, report: SeedReport
) -> None:
    password = settings.DEMO_PASSWORD or random_password()
    names = (await session.scalars(select(col(Role.name)))).all()
    role_names = [name for name in names if name != SUPERADMIN_ROLE]
    any_created = False
    for role_name in sorted(role_names):
        username = f"demo_{role_name}"
        _, created = await ensure_user(
            session,
            hasher,
            username=username,
            email=f"{username}@demo.gatehouse.local",
            password=password,
            roles=[role_name],
            full_name=f"Demo {role_name.replace('_', ' ').title()}",
            attributes=DEMO_ATTRIBUTES.get(role_name, {}),
        )
        any_created = any_created or created
    if any_created and not settings.DEMO_PASSWORD:
        report.printed_credentials.append(("demo_* (every demo user)", password))


# Row-filter variables of the demo staff ($user.department, $user.ward).
DEMO_ATTRIBUTES: dict[str, dict[str, str]] = {
    "doctor": {"department": "cardiology"},
    "nurse": {"ward": "C1"},
    "receptionist": {"department": "admissions"},
}


def run_seed(settings: Settings, *, demo: bool = False) -> SeedReport:
    return asyncio.run(seed(settings, demo=demo))


async def create_superuser(
    settings: Settings, *, username: str, email: str, password: str
) -> str | None:
    """Create a super-admin (audited like any account creation). None when created, otherwise
    why not: the username or the email already belongs to a user (deleted ones included)."""
    username, email = username.strip().lower(), email.strip().lower()
    engine = create_null_pool_engine(settings.DATABASE_URL)
    try:
        async with create_session_factory(engine)() as session:
            for name, column, value in (
                ("username", User.username, username),
                ("email", User.email, email),
            ):
                if await session.scalar(select(col(User.id)).where(col(column) == value)):
                    return f"a user with that {name} already exists"
            user, _ = await ensure_user(
                session,
                PasswordHasher(settings),
                username=username,
                email=email,
                password=password,
                roles=[SUPERADMIN_ROLE],
            )
            AuditService(session).record(
                "user.create",
                "user",
                user.id,
                changes=diff(
                    None,
                    {
                        "username": username,
                        "email": email,
                        "is_active": True,
                        "is_verified": True,
                        "roles": [SUPERADMIN_ROLE],
                    },
                ),
                details={"via": "gatehouse create-superuser"},
            )
            await bump_version(session)
            await session.commit()
            return None
    finally:
        await engine.dispose()
