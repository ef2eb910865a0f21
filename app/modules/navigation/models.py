"""Navigation tables: modules (menu sections) and their routes (a tree per module)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index
from sqlmodel import Field

from app.core.database import TableBase


class NavModule(TableBase, table=True):
    """A section of the navigation (administration, patients, ...)."""

    __tablename__ = "navigation_modules"

    name: str = Field(max_length=80, unique=True, index=True)
    label: str = Field(max_length=120)
    icon: str | None = Field(default=None, max_length=80)
    order: int = Field(default=0)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool = Field(default=True, index=True)


class NavRoute(TableBase, table=True):
    """One entry of a module's menu tree. `meta` is exposed as `metadata` in the API
    (`metadata` is reserved on SQLAlchemy models)."""

    __tablename__ = "navigation_routes"
    __table_args__ = (Index("ix_navigation_routes_module_order", "module_id", "order"),)

    path: str = Field(max_length=500, index=True)
    name: str = Field(max_length=120, unique=True, index=True)
    label: str = Field(max_length=120)
    icon: str | None = Field(default=None, max_length=80)
    order: int = Field(default=0)
    module_id: uuid.UUID = Field(
        sa_column_args=[ForeignKey("navigation_modules.id", ondelete="CASCADE")], index=True
    )
    parent_id: uuid.UUID | None = Field(
        default=None,
        sa_column_args=[ForeignKey("navigation_routes.id", ondelete="CASCADE")],
        index=True,
    )
    required_permission: str | None = Field(default=None, max_length=161)
    show_in_sidebar: bool = Field(default=True, index=True)
    is_active: bool = Field(default=True, index=True)
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
