"""Helpers of the users tests: roles by name, custom roles, audit rows, user rows."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import col

from app.authz.models import AuthzState, Permission, Role, RolePermission
from app.modules.audit.models import AuditLog
from app.modules.auth.models import AuthSession
from app.modules.users.models import User

API = "/api/v1/users"


async def role_id(runtime: Any, name: str) -> uuid.UUID:
    async with runtime.session_factory() as session:
        rid = await session.scalar(select(col(Role.id)).where(col(Role.name) == name))
    assert rid is not None, name
    return rid


async def make_role(runtime: Any, name: str, permissions: list[str]) -> uuid.UUID:
    """A role holding exactly `permissions` (catalogue entries), created straight in the DB."""
    async with runtime.session_factory() as session:
        role = Role(name=name, description="test role")
        session.add(role)
        await session.flush()
        for perm in permissions:
            pid = await session.scalar(
                select(col(Permission.id)).where(col(Permission.name) == perm)
            )
            assert pid is not None, perm
            session.add(RolePermission(role_id=role.id, permission_id=pid))
        state = await session.get(AuthzState, 1)
        assert state is not None
        state.version += 1
        await session.commit()
        version, rid = state.version, role.id
    await runtime.state.authz_changed(version)
    return rid


async def audit_rows(runtime: Any, **filters: Any) -> list[AuditLog]:
    async with runtime.session_factory() as session:
        stmt = select(AuditLog).order_by(col(AuditLog.created_at), col(AuditLog.id))
        for key, value in filters.items():
            stmt = stmt.where(getattr(AuditLog, key) == value)
        return list((await session.scalars(stmt)).all())


async def user_row(runtime: Any, user_id: uuid.UUID) -> User:
    async with runtime.session_factory() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def live_sessions(runtime: Any, user_id: uuid.UUID) -> int:
    async with runtime.session_factory() as session:
        rows = await session.scalars(
            select(col(AuthSession.id)).where(
                col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None)
            )
        )
        return len(rows.all())


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body
