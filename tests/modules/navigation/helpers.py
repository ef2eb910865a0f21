"""Shared assertions for the navigation tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import col

from app.modules.audit.models import AuditLog


async def audit_rows(app: Any, resource_type: str, resource_id: str) -> list[AuditLog]:
    async with app.state.runtime.session_factory() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(
                col(AuditLog.resource_type) == resource_type,
                col(AuditLog.resource_id) == resource_id,
            )
            .order_by(col(AuditLog.created_at), col(AuditLog.id))
        )
        return list(rows.all())


async def authz_version(app: Any) -> int:
    from app.authz.models import AuthzState

    async with app.state.runtime.session_factory() as session:
        state = await session.get(AuthzState, 1)
        assert state is not None
        return int(state.version)
