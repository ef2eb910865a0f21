from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.database import Write, new_id, utcnow
from app.modules.audit.models import AuditLog

_AUDIT_LOGS: Table = AuditLog.__table__  # type: ignore[attr-defined]
_INSERT = insert(_AUDIT_LOGS)  # built once: construction costs more than the cached execution


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, entry: AuditLog) -> None:
        self.session.add(entry)

    def insert_write(self, values: dict[str, Any]) -> Write:
        """One audit row as a Core INSERT, for `execute_writes` in the session's transaction."""
        created = utcnow()
        # None values are left out, so they are stored as SQL NULL (as through the ORM), never
        # as a JSON 'null' in the JSON columns.
        row = {k: v for k, v in values.items() if v is not None}
        row.update(id=new_id(), created_at=created, updated_at=created)
        return _INSERT, row

    async def get(self, entry_id: uuid.UUID) -> AuditLog | None:
        return await self.session.get(AuditLog, entry_id)

    async def search(
        self,
        *,
        actor_id: uuid.UUID | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        related_user: uuid.UUID | None = None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[AuditLog], int]:
        conditions: list[ColumnElement[bool]] = []
        if actor_id is not None:
            conditions.append(col(AuditLog.actor_id) == actor_id)
        if related_user is not None:
            conditions.append(
                (col(AuditLog.actor_id) == related_user)
                | (
                    (col(AuditLog.resource_type) == "user")
                    & (col(AuditLog.resource_id) == str(related_user))
                )
            )
        if action is not None:
            conditions.append(col(AuditLog.action) == action)
        if resource_type is not None:
            conditions.append(col(AuditLog.resource_type) == resource_type)
        if resource_id is not None:
            conditions.append(col(AuditLog.resource_id) == resource_id)
        if outcome is not None:
            conditions.append(col(AuditLog.outcome) == outcome)
        if since is not None:
            conditions.append(col(AuditLog.created_at) >= since)
        if until is not None:
            conditions.append(col(AuditLog.created_at) <= until)
        total = await self.session.scalar(
            select(func.count()).select_from(AuditLog).where(*conditions)
        )
        rows = await self.session.scalars(
            select(AuditLog)
            .where(*conditions)
            .order_by(col(AuditLog.created_at).desc(), col(AuditLog.id).desc())
            .limit(limit)
            .offset(offset)
        )
        return rows.all(), int(total or 0)
