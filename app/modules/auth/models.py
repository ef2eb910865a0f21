from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlmodel import Field

from app.core.database import TableBase, datetime_field


class AuthSession(TableBase, table=True):
    """One login: the family that every refresh token rotated from it belongs to."""

    __tablename__ = "auth_sessions"

    user_id: uuid.UUID = Field(
        sa_column_args=[ForeignKey("users.id", ondelete="CASCADE")], index=True
    )
    expires_at: datetime = datetime_field(nullable=False)
    last_used_at: datetime | None = datetime_field()
    revoked_at: datetime | None = datetime_field(index=True)
    revoked_reason: str | None = Field(default=None, max_length=50)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=500)


class RefreshToken(TableBase, table=True):
    __tablename__ = "refresh_tokens"

    session_id: uuid.UUID = Field(
        sa_column_args=[ForeignKey("auth_sessions.id", ondelete="CASCADE")], index=True
    )
    token_hash: str = Field(max_length=64, unique=True, index=True)
    expires_at: datetime = datetime_field(nullable=False)
    used_at: datetime | None = datetime_field()
