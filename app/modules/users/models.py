from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field

from app.core.database import SoftDeleteMixin, TableBase, datetime_field


class User(TableBase, SoftDeleteMixin, table=True):
    __tablename__ = "users"
    # created_after / created_before filters and the default newest-first order of GET /users.
    __table_args__ = (Index("ix_users_created_at", "created_at"),)

    # Stored lower-cased so that login and uniqueness are case-insensitive on every backend.
    username: str = Field(max_length=64, unique=True, index=True)
    email: str = Field(max_length=320, unique=True, index=True)
    full_name: str | None = Field(default=None, max_length=200, index=True)
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    nickname: str | None = Field(default=None, max_length=100)
    picture_url: str | None = Field(default=None, max_length=2048)
    phone: str | None = Field(default=None, max_length=50)
    password_hash: str | None = Field(default=None, max_length=512)
    is_active: bool = Field(default=True, index=True)
    is_verified: bool = Field(default=False, index=True)
    # Free-form string attributes (department, ward, ...) used by row-filter variables.
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    failed_login_count: int = Field(default=0)
    lockout_count: int = Field(default=0)
    locked_until: datetime | None = datetime_field()
    last_login_at: datetime | None = datetime_field()
    password_changed_at: datetime | None = datetime_field()


@dataclass(frozen=True, slots=True)
class LoginAccount:
    """What a login reads of a user: the credentials and the state that admits or refuses it
    (read with one Core SELECT of these columns, not as an ORM object: the login hot path)."""

    id: uuid.UUID
    username: str
    password_hash: str | None
    is_active: bool
    is_verified: bool
    locked_until: datetime | None
    failed_login_count: int
    lockout_count: int
