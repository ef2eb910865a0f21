"""Helpers of the RBAC tests: ids by name, audit rows, clients for users holding given roles."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from app.authz.models import Permission, Role
from app.modules.audit.models import AuditLog
from tests.factories import Factory, TestUser

API = "/api/v1"


class Rbac:
    def __init__(self, app: Any, factory: Factory, admin: httpx.AsyncClient) -> None:
        self.app = app
        self.runtime = app.state.runtime
        self.factory = factory
        self.admin = admin

    async def permission_id(self, name: str) -> uuid.UUID:
        async with self.runtime.session_factory() as session:
            pid = await session.scalar(
                select(col(Permission.id)).where(col(Permission.name) == name)
            )
        if pid is None:
            response = await self.admin.post(f"{API}/permissions", json={"name": name})
            assert response.status_code == 201, response.text
            return uuid.UUID(response.json()["id"])
        return pid

    async def role_id(self, name: str) -> uuid.UUID:
        async with self.runtime.session_factory() as session:
            rid = await session.scalar(select(col(Role.id)).where(col(Role.name) == name))
        assert rid is not None, name
        return rid

    async def role(
        self,
        name: str,
        permissions: list[str] = (),
        parents: list[str] = (),  # type: ignore[assignment]
    ) -> uuid.UUID:
        for p in permissions:
            await self.permission_id(p)
        response = await self.admin.post(
            f"{API}/roles",
            json={"name": name, "permissions": list(permissions), "parents": list(parents)},
        )
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["id"])

    async def group(
        self, name: str, roles: list[str] = (), members: list[TestUser] = ()
    ) -> uuid.UUID:  # type: ignore[assignment]
        response = await self.admin.post(f"{API}/groups", json={"name": name})
        assert response.status_code == 201, response.text
        gid = uuid.UUID(response.json()["id"])
        for role in roles:
            r = await self.admin.post(f"{API}/groups/{gid}/roles/{await self.role_id(role)}")
            assert r.status_code == 200, r.text
        for member in members:
            r = await self.admin.post(f"{API}/groups/{gid}/members/{member.id}")
            assert r.status_code == 204, r.text
        return gid

    async def client(self, *roles: str, **kwargs: Any) -> tuple[TestUser, httpx.AsyncClient]:
        user = await self.factory.user(roles=list(roles), **kwargs)
        return user, await self.factory.client_for(user)

    async def audit(self, action: str, **filters: Any) -> list[AuditLog]:
        async with self.runtime.session_factory() as session:
            query = select(AuditLog).where(col(AuditLog.action) == action)
            for key, value in filters.items():
                query = query.where(getattr(AuditLog, key) == value)
            return list((await session.scalars(query.order_by(col(AuditLog.created_at)))).all())

    async def me(self, client: httpx.AsyncClient) -> dict[str, Any]:
        response = await client.get(f"{API}/authz/me")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
async def rbac(app: Any, factory: Factory, admin_client: httpx.AsyncClient) -> Rbac:
    return Rbac(app, factory, admin_client)
