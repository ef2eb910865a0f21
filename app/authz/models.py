"""Tables of the authorization engine: permissions, roles (a DAG), groups, assignments,
field/row policies and the authorization version counters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from app.core.database import TableBase, created_at_field


def _fk(target: str, *, index: bool = False) -> Any:
    return Field(
        sa_column_args=[ForeignKey(target, ondelete="CASCADE")],
        primary_key=True,
        index=index,
    )


class Permission(TableBase, table=True):
    __tablename__ = "permissions"

    name: str = Field(max_length=150, unique=True, index=True)  # "resource:action"
    resource: str = Field(max_length=80, index=True)
    action: str = Field(max_length=80)
    description: str | None = Field(default=None, max_length=500)
    category: str = Field(max_length=80, index=True)
    is_system: bool = Field(default=False)
    is_active: bool = Field(default=True, index=True)


class Role(TableBase, table=True):
    __tablename__ = "roles"

    name: str = Field(max_length=80, unique=True, index=True)
    description: str | None = Field(default=None, max_length=500)
    is_system: bool = Field(default=False)  # a built-in template
    is_active: bool = Field(default=True, index=True)


class RolePermission(SQLModel, table=True):
    __tablename__ = "role_permissions"

    role_id: uuid.UUID = _fk("roles.id")
    permission_id: uuid.UUID = _fk("permissions.id", index=True)
    created_at: datetime = created_at_field()


class RoleParent(SQLModel, table=True):
    """`role_id` inherits every permission of `parent_id`."""

    __tablename__ = "role_parents"

    role_id: uuid.UUID = _fk("roles.id")
    parent_id: uuid.UUID = _fk("roles.id", index=True)
    created_at: datetime = created_at_field()


class UserRole(SQLModel, table=True):
    __tablename__ = "user_roles"

    user_id: uuid.UUID = _fk("users.id")
    role_id: uuid.UUID = _fk("roles.id", index=True)
    created_at: datetime = created_at_field()
    granted_by: uuid.UUID | None = Field(default=None)


class Group(TableBase, table=True):
    __tablename__ = "groups"

    name: str = Field(max_length=80, unique=True, index=True)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool = Field(default=True, index=True)


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_members"

    group_id: uuid.UUID = _fk("groups.id")
    user_id: uuid.UUID = _fk("users.id", index=True)
    created_at: datetime = created_at_field()


class GroupRole(SQLModel, table=True):
    __tablename__ = "group_roles"

    group_id: uuid.UUID = _fk("groups.id")
    role_id: uuid.UUID = _fk("roles.id", index=True)
    created_at: datetime = created_at_field()


class Policy(TableBase, table=True):
    """For one role, resource and action: which fields, which rows, and for writes which
    presets and checks (see ARCHITECTURE.md, authorization model, point 3)."""

    __tablename__ = "policies"
    __table_args__ = (Index("ix_policies_role_resource_action", "role_id", "resource", "action"),)

    role_id: uuid.UUID = Field(sa_column_args=[ForeignKey("roles.id", ondelete="CASCADE")])
    resource: str = Field(max_length=80, index=True)
    action: str = Field(max_length=20)
    fields: list[str] = Field(default_factory=lambda: ["*"], sa_column=Column(JSON, nullable=False))
    row_filter: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    presets: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    check: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    description: str | None = Field(default=None, max_length=500)
    is_active: bool = Field(default=True)


class AuthzState(SQLModel, table=True):
    """One row. `version` moves with every change to what anyone may do; `revocation_version`
    with every revoked session. Processes compare them to know when their caches are stale."""

    __tablename__ = "authz_state"

    id: int = Field(default=1, primary_key=True)
    version: int = Field(default=1, sa_column=Column(BigInteger, nullable=False, default=1))
    revocation_version: int = Field(
        default=1, sa_column=Column(BigInteger, nullable=False, default=1)
    )
