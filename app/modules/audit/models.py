from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field

from app.core.database import TableBase


class AuditLog(TableBase, table=True):
    """Append-only: no API changes or deletes a row."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_resource", "resource_type", "resource_id"),
        Index("ix_audit_logs_created_at", "created_at"),
    )

    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor_username: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=80, index=True)
    resource_type: str = Field(max_length=80)
    resource_id: str | None = Field(default=None, max_length=80)
    outcome: str = Field(default="success", max_length=20)  # success | failure | denied
    changes: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=500)
    request_id: str | None = Field(default=None, max_length=64)
